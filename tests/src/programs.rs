//! The stack's real programs in tests: the binaries `stack/local/install`
//! builds, started on free 127.0.0.1 ports and stopped when dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Whether a missing tool fails the test (CI) rather than skipping it:
/// `OTELWIRE_REQUIRE_TOOLS` set to anything but empty, `0` or `false`.
pub fn tools_required() -> bool {
    std::env::var("OTELWIRE_REQUIRE_TOOLS").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The binaries `stack/local/install` prints.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The collector built from `otel-collector/builder.yaml`.
    pub otelcol: PathBuf,
    /// Prometheus 3.
    pub prometheus: PathBuf,
    /// promtool 3.
    pub promtool: PathBuf,
    /// kustomize.
    pub kustomize: PathBuf,
}

/// Runs `stack/local/install` once per test process (seconds when its cache
/// is warm). When it fails: a panic with its output under
/// `OTELWIRE_REQUIRE_TOOLS`, otherwise a notice and `None`.
pub fn binaries() -> Option<&'static Binaries> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let found = BINARIES.get_or_init(|| {
        let out = Command::new(root().join("stack/local/install"))
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run stack/local/install: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "stack/local/install failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let path = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(PathBuf::from)
                .ok_or_else(|| format!("stack/local/install printed no {name}= line:\n{stdout}"))
        };
        Ok(Binaries {
            otelcol: path("otelcol")?,
            prometheus: path("prometheus")?,
            promtool: path("promtool")?,
            kustomize: path("kustomize")?,
        })
    });
    match found {
        Ok(b) => Some(b),
        Err(e) if tools_required() => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED: the stack's programs are not available: {e}");
            None
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the program binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming
/// `what` and the last thing `check` said.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A program running for a test, its output in a log file; dropping it
/// stops it (SIGTERM, then SIGKILL after 10 s).
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd`, with stdout and stderr appended to `log`.
    pub fn start(name: &str, mut cmd: Command, log: &Path) -> Process {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Process {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// What the program wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs; panics with its output if it exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("{} exited ({status}):\n{}", self.name, self.output());
        }
    }

    /// Stops it (SIGTERM, SIGKILL after 10 s) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking HTTP client for the programs' own APIs.
pub fn http() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .expect("an HTTP client")
    })
}

/// `GET url`: the status and the body, or the error as text.
pub fn get(url: &str) -> Result<(u16, String), String> {
    let r = http()
        .get(url)
        .send()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().unwrap_or_default()))
}

/// Waits until `GET url` answers 200.
pub fn wait_for_200(what: &str, url: &str, timeout: Duration) {
    wait_until(what, timeout, || match get(url)? {
        (200, _) => Ok(()),
        (s, body) => Err(format!("{s} {body}")),
    });
}

/// The collector's ports, for one instance.
#[derive(Debug, Clone, Copy)]
pub struct CollectorPorts {
    /// OTLP/gRPC.
    pub grpc: u16,
    /// OTLP/HTTP.
    pub http: u16,
    /// health_check.
    pub health: u16,
    /// Its own metrics (Prometheus format).
    pub metrics: u16,
}

impl CollectorPorts {
    /// Four free ports.
    pub fn free() -> CollectorPorts {
        CollectorPorts {
            grpc: free_port(),
            http: free_port(),
            health: free_port(),
            metrics: free_port(),
        }
    }
}

/// How to run one collector: a configuration of `otel-collector/`, the
/// environment its `${env:…}` references read, and `--config=yaml:…`
/// overrides; restartable with the same ports and storage.
#[derive(Debug, Clone)]
pub struct CollectorSpec {
    /// The file in `otel-collector/`.
    pub config: String,
    /// Its ports.
    pub ports: CollectorPorts,
    /// Where `file_storage` keeps the sending queues, and the log.
    pub dir: PathBuf,
    /// More environment: the backends' endpoints.
    pub env: Vec<(String, String)>,
    /// `yaml:` configuration sources merged over the file.
    pub overrides: Vec<String>,
}

impl CollectorSpec {
    /// `config` on free ports, storage in `dir`.
    pub fn new(config: &str, dir: &Path) -> CollectorSpec {
        CollectorSpec {
            config: config.to_owned(),
            ports: CollectorPorts::free(),
            dir: dir.to_path_buf(),
            env: Vec::new(),
            overrides: Vec::new(),
        }
    }

    /// Adds an environment variable.
    #[must_use]
    pub fn env(mut self, name: &str, value: impl Into<String>) -> CollectorSpec {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a `yaml:` override (`key::path: value`).
    #[must_use]
    pub fn set(mut self, yaml: impl Into<String>) -> CollectorSpec {
        self.overrides.push(yaml.into());
        self
    }

    /// The command, without starting it.
    pub fn command(&self, bin: &Path) -> Command {
        let p = self.ports;
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config=file:{}",
            root().join("otel-collector").join(&self.config).display()
        ));
        for o in &self.overrides {
            cmd.arg(format!("--config=yaml:{o}"));
        }
        let storage = self.dir.join("file_storage");
        cmd.env(
            "OTELCOL_OTLP_GRPC_ENDPOINT",
            format!("127.0.0.1:{}", p.grpc),
        )
        .env(
            "OTELCOL_OTLP_HTTP_ENDPOINT",
            format!("127.0.0.1:{}", p.http),
        )
        .env("OTELCOL_HEALTH_ENDPOINT", format!("127.0.0.1:{}", p.health))
        .env("OTELCOL_METRICS_HOST", "127.0.0.1")
        .env("OTELCOL_METRICS_PORT", p.metrics.to_string())
        .env("OTELCOL_STORAGE_DIR", storage.display().to_string())
        // The memory limiter's percentages need a limit: the test machine's.
        .env("GOMEMLIMIT", "800MiB");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts it and waits until its health endpoint answers.
    pub fn start(&self, bin: &Path) -> Collector {
        std::fs::create_dir_all(self.dir.join("file_storage")).expect("storage directory");
        let name = format!("otelcol ({})", self.config);
        let mut process = Process::start(
            &name,
            self.command(bin),
            &self.dir.join(format!("{}.log", self.config)),
        );
        let health = format!("http://127.0.0.1:{}/", self.ports.health);
        wait_until(&format!("{name} healthy"), Duration::from_secs(30), || {
            process.assert_running();
            match get(&health)? {
                (200, _) => Ok(()),
                (s, b) => Err(format!("{s} {b}")),
            }
        });
        Collector {
            spec: self.clone(),
            process,
        }
    }
}

/// A running collector.
#[derive(Debug)]
pub struct Collector {
    /// How it was started.
    pub spec: CollectorSpec,
    /// The process.
    pub process: Process,
}

impl Collector {
    /// Its OTLP/gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.ports.grpc)
    }

    /// Its OTLP/HTTP endpoint, `http://127.0.0.1:PORT`.
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.ports.http)
    }

    /// One of its own metrics, summed over every series whose text line
    /// contains all of `having`.
    pub fn own_metric(&self, name: &str, having: &[&str]) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.spec.ports.metrics);
        let (_, text) = get(&url).unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && l[name.len()..].starts_with(['{', ' '])
                    && having.iter().all(|h| l.contains(h))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// What `stack/local/run` printed: `name=url` lines, up to `ready`.
#[derive(Debug)]
pub struct LocalStack {
    /// The process (the script, which stops its programs when it stops).
    pub process: Process,
    /// Its `name=url` lines.
    pub urls: Vec<(String, String)>,
}

impl LocalStack {
    /// Runs `stack/local/run DIR` with `env` and waits for `ready`.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> LocalStack {
        let log = dir.join("run.log");
        let mut cmd = Command::new(root().join("stack/local/run"));
        cmd.arg(dir.join("data"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut process = Process::start("stack/local/run", cmd, &log);
        let lines = wait_until("stack/local/run ready", Duration::from_secs(120), || {
            process.assert_running();
            let text = process.output();
            let lines: Vec<String> = BufReader::new(text.as_bytes())
                .lines()
                .map_while(Result::ok)
                .collect();
            if lines.iter().any(|l| l == "ready") {
                Ok(lines)
            } else {
                Err(text)
            }
        });
        let urls = lines
            .iter()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        LocalStack { process, urls }
    }

    /// The URL printed as `name=`.
    pub fn url(&self, name: &str) -> &str {
        self.urls
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("stack/local/run printed no {name}= line: {:?}", self.urls))
    }
}

/// Prometheus's HTTP API at `base`.
#[derive(Debug, Clone)]
pub struct PromApi {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl PromApi {
    /// An instant query's result vector (`data.result`), or the error.
    pub fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let r = http()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = r.json().map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("query {expr:?}: {body}"));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every metric name Prometheus holds.
    pub fn names(&self) -> Vec<String> {
        let (_, body) = get(&format!("{}/api/v1/label/__name__/values", self.base))
            .expect("Prometheus answers");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `expr` returns at least one series.
    pub fn wait_for(&self, expr: &str, timeout: Duration) -> Vec<serde_json::Value> {
        wait_until(&format!("Prometheus has {expr}"), timeout, || {
            let r = self.query(expr)?;
            if r.is_empty() {
                Err("no series".into())
            } else {
                Ok(r)
            }
        })
    }
}
