//! The call-duration histogram bound to its attribute sets, once per method
//! (and, on the client, server) and once per outcome, so that an RPC
//! neither builds its attribute set nor makes the SDK hash it.
//!
//! A method enters the cache only once it has been answered with something
//! other than a server's `UNIMPLEMENTED` (which counts as `_OTHER`): a
//! scanner's made-up paths do not fill it. The cache is capped all the
//! same; past the cap, measurements go through the unbound histogram.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{BoundHistogram, Histogram};
use otelwire::opentelemetry_semantic_conventions::attribute as semconv;
use tonic::Code;

use crate::status::code_name;

/// Method entries kept at most (method × server).
const MAX_METHODS: usize = 1024;
/// Outcomes (status code, `error.type`) kept at most per method entry.
const MAX_OUTCOMES: usize = 64;

/// Which series an RPC's duration goes to, known at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `rpc.method`.
    pub(crate) method: Box<str>,
    /// `server.address` and `server.port` (client only).
    pub(crate) server: Option<(Box<str>, Option<i64>)>,
}

impl Target {
    fn matches(&self, method: &str, server: Option<(&str, Option<i64>)>) -> bool {
        *self.method == *method && self.server.as_ref().map(|(h, p)| (&**h, *p)) == server
    }

    /// The attribute set of the duration for this outcome (`method`
    /// replaced by `_OTHER` when `other`).
    fn attributes(
        &self,
        other: bool,
        code: Code,
        error_type: Option<&'static str>,
    ) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(6);
        attrs.push(KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc"));
        attrs.push(if other {
            KeyValue::new(semconv::RPC_METHOD, "_OTHER")
        } else {
            KeyValue::new(semconv::RPC_METHOD, self.method.to_string())
        });
        if let Some((host, port)) = &self.server {
            attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_string()));
            if let Some(p) = port {
                attrs.push(KeyValue::new(semconv::SERVER_PORT, *p));
            }
        }
        attrs.push(KeyValue::new(
            semconv::RPC_RESPONSE_STATUS_CODE,
            code_name(code),
        ));
        if let Some(e) = error_type {
            attrs.push(KeyValue::new(semconv::ERROR_TYPE, e));
        }
        attrs
    }
}

/// A status code and `error.type`, and their bound histogram.
type Outcomes = Vec<(Code, Option<&'static str>, BoundHistogram<f64>)>;

/// The bound histograms of one method entry, per outcome.
pub(crate) struct MethodMetrics {
    target: Target,
    outcomes: RwLock<Outcomes>,
}

impl std::fmt::Debug for MethodMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodMetrics")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl MethodMetrics {
    /// Records one duration with its outcome's series.
    fn record(
        &self,
        duration: &Histogram<f64>,
        seconds: f64,
        code: Code,
        error_type: Option<&'static str>,
    ) {
        let found = |o: &Outcomes| {
            o.iter()
                .find(|(c, e, _)| *c == code && *e == error_type)
                .map(|(_, _, h)| h.clone())
        };
        let bound = match self.outcomes.read() {
            Ok(o) => found(&o),
            Err(_) => None,
        };
        if let Some(h) = bound {
            h.record(seconds);
            return;
        }
        let attrs = self.target.attributes(false, code, error_type);
        if let Ok(mut o) = self.outcomes.write() {
            if let Some(h) = found(&o) {
                drop(o);
                h.record(seconds);
                return;
            }
            if o.len() < MAX_OUTCOMES {
                let h = duration.bind(&attrs);
                h.record(seconds);
                o.push((code, error_type, h));
                return;
            }
        }
        duration.record(seconds, &attrs);
    }
}

/// Where an RPC's duration goes: its method entry when cached, else what
/// makes the attribute set.
#[derive(Debug)]
pub(crate) enum Series {
    Cached(Arc<MethodMetrics>),
    Uncached(Target),
}

/// FNV-1a: the key is a short string or two, hashed once per RPC.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Already a hash: used as is.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Methods = HashMap<u64, Vec<Arc<MethodMetrics>>, BuildHasherDefault<Prehashed>>;

/// One layer's call-duration histogram and its bound handles.
pub(crate) struct Duration {
    histogram: Histogram<f64>,
    methods: RwLock<Methods>,
}

impl std::fmt::Debug for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duration").finish_non_exhaustive()
    }
}

fn key(method: &str, server: Option<(&str, Option<i64>)>) -> u64 {
    let mut h = Fnv::default();
    h.write(method.as_bytes());
    match server {
        Some((host, port)) => {
            h.write(&[0xff]);
            h.write(host.as_bytes());
            h.write(&port.unwrap_or(-1).to_le_bytes());
        }
        None => h.write(&[0xfe]),
    }
    h.finish()
}

impl Duration {
    pub(crate) fn new(histogram: Histogram<f64>) -> Self {
        Duration {
            histogram,
            methods: RwLock::new(HashMap::default()),
        }
    }

    /// The series of an RPC to `method` (on `server`, client side).
    pub(crate) fn series(&self, method: &str, server: Option<(&str, Option<i64>)>) -> Series {
        let found = self.methods.read().ok().and_then(|m| {
            m.get(&key(method, server))
                .and_then(|v| v.iter().find(|e| e.target.matches(method, server)))
                .cloned()
        });
        match found {
            Some(m) => Series::Cached(m),
            None => Series::Uncached(Target {
                method: method.into(),
                server: server.map(|(h, p)| (h.into(), p)),
            }),
        }
    }

    /// Records an RPC's duration. `other`: the method counts as `_OTHER`
    /// (a server's `UNIMPLEMENTED`), and does not enter the cache.
    pub(crate) fn record(
        &self,
        series: Series,
        seconds: f64,
        other: bool,
        code: Code,
        error_type: Option<&'static str>,
    ) {
        let target = match series {
            Series::Cached(m) if !other => {
                return m.record(&self.histogram, seconds, code, error_type);
            }
            Series::Cached(m) => m.target.clone(),
            Series::Uncached(t) => t,
        };
        if !other && let Some(m) = self.insert(target.clone()) {
            return m.record(&self.histogram, seconds, code, error_type);
        }
        let attrs = target.attributes(other, code, error_type);
        self.histogram.record(seconds, &attrs);
    }

    /// The entry of `target`, made if missing; `None` past the cap.
    fn insert(&self, target: Target) -> Option<Arc<MethodMetrics>> {
        let server = target.server.as_ref().map(|(h, p)| (&**h, *p));
        let k = key(&target.method, server);
        let mut methods = self.methods.write().ok()?;
        if let Some(m) = methods
            .get(&k)
            .and_then(|v| v.iter().find(|e| e.target.matches(&target.method, server)))
        {
            return Some(m.clone());
        }
        if methods.values().map(Vec::len).sum::<usize>() >= MAX_METHODS {
            return None;
        }
        let m = Arc::new(MethodMetrics {
            target,
            outcomes: RwLock::new(Vec::new()),
        });
        methods.entry(k).or_default().push(m.clone());
        Some(m)
    }
}
