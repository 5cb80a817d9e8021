//! What the `inventory` binary tests share: waiting, and the binary on a
//! free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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

/// A running `inventory`, its console captured; killed when dropped.
pub(crate) struct Service {
    /// The process.
    pub(crate) child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    /// The `host:port` it listens on.
    pub(crate) addr: String,
}

impl Service {
    /// Starts the binary on a free loopback port with `env` (and no
    /// collector), and waits for its listening line.
    pub(crate) fn start(env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_inventory"));
        cmd.env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("OTEL_SDK_DISABLED", "true")
            .env("OTELWIRE_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("inventory starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let sink = stdout.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let line = wait_until("the listening line", WAIT, || {
            stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("inventory listening"))
                .cloned()
        });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let addr = v["addr"].as_str().unwrap().to_owned();
        Service {
            child,
            stdout,
            addr,
        }
    }

    /// Its stdout lines so far.
    #[allow(dead_code)]
    pub(crate) fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
