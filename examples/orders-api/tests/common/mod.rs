//! What the `orders-api` binary tests share: waiting, a throwaway
//! directory, the binary on a free port, and blocking HTTP/1.1 requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long anything may take to show up.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// Waits until `f` returns `Some`, or panics with `what` after `within`.
pub(crate) fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory, removed when dropped.
#[allow(dead_code)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new directory under the system's temp dir, its name starting with `prefix`.
    #[allow(dead_code)]
    pub(crate) fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `orders-api`, its console captured; killed when dropped.
pub(crate) struct Service {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    addr: Option<String>,
}

/// The lines `r` yields, collected by a thread as they arrive.
fn capture_lines(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&line).into_owned());
            line.clear();
        }
    });
    lines
}

impl Service {
    /// Starts the binary on a free loopback port with `env` (and no
    /// collector: the SDK is disabled unless `env` says otherwise).
    pub(crate) fn start(env: &[(&str, &str)]) -> Service {
        Self::spawn(env, true)
    }

    /// Starts the binary with `env`, waiting for its listening line only if `wait_listening`.
    pub(crate) fn spawn(env: &[(&str, &str)], wait_listening: bool) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-api"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("OTEL_SDK_DISABLED", "true")
            .env("INVENTORY_URL", "http://127.0.0.1:9")
            .env("OTELWIRE_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("orders-api starts");
        let stdout = capture_lines(child.stdout.take().unwrap());
        let stderr = capture_lines(child.stderr.take().unwrap());
        let mut service = Service {
            child,
            stdout,
            stderr,
            addr: None,
        };
        if wait_listening {
            let line =
                service.wait_line("the listening line", |l| l.contains("orders-api listening"));
            let at = line
                .find("127.0.0.1:")
                .expect("the address in the listening line");
            let addr: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            service.addr = Some(addr);
        }
        service
    }

    /// The `host:port` it listens on.
    pub(crate) fn addr(&self) -> &str {
        self.addr.as_deref().unwrap()
    }

    /// The `http://` URL of `path` on it.
    #[allow(dead_code)]
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Its stdout lines so far.
    #[allow(dead_code)]
    pub(crate) fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The first console line `matches` accepts, waiting for it.
    pub(crate) fn wait_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        wait_until(what, WAIT, || {
            self.stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| matches(l))
                .cloned()
        })
    }

    /// Sends SIGTERM.
    #[allow(dead_code)]
    pub(crate) fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "SIGTERM delivered");
    }

    /// Waits for the process to exit (at most `within`).
    #[allow(dead_code)]
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        wait_until("the process to exit", within, || {
            self.child.try_wait().unwrap()
        })
    }

    /// Its stderr so far, as one text.
    #[allow(dead_code)]
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().concat()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.1 exchange over a fresh connection: the status and
/// the response head and body as text.
#[allow(dead_code)]
pub(crate) fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {text:?}"));
    (status, text)
}

/// A JSON `body` POSTed to `path` with extra `headers`: the status and the response text.
#[allow(dead_code)]
pub(crate) fn post_json(addr: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
            body.len()
        ),
    )
}
