//! Metric handles bound to their attribute sets once per route, method and
//! scheme (and per status code for the duration), so that a request does not
//! make the SDK hash its attribute sets three times over.
//!
//! The sets are low-cardinality by construction (route templates, known
//! methods, status codes); the cache is capped all the same, and past the
//! cap measurements go through the unbound instruments.

// `&Cow<'static, str>` on purpose: cloning a borrowed scheme into a
// `KeyValue` stays allocation-free, which `&str` would not.
#![allow(clippy::ptr_arg)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{
    BoundHistogram, BoundUpDownCounter, Histogram, UpDownCounter,
};

/// Route entries kept at most (method × scheme × route).
const MAX_ROUTES: usize = 1024;
/// Outcomes (status code, panicked) kept at most per route entry.
const MAX_OUTCOMES: usize = 64;

/// The metric handles of one (method, scheme, route).
pub(crate) struct RouteMetrics {
    method: &'static str,
    scheme: Cow<'static, str>,
    route: Option<Box<str>>,
    /// The span name, `{METHOD} {route}` (or `{METHOD}`).
    pub(crate) span_name: Box<str>,
    /// `http.server.active_requests{method, scheme}`.
    pub(crate) active: BoundUpDownCounter<i64>,
    /// `http.server.request.duration` per (status code, panicked).
    outcomes: RwLock<Vec<(u16, bool, BoundHistogram<f64>)>>,
}

impl RouteMetrics {
    /// Records a request's duration with its outcome's attribute set.
    pub(crate) fn record_duration(
        &self,
        duration: &Histogram<f64>,
        seconds: f64,
        code: u16,
        panicked: bool,
    ) {
        let found = |o: &Vec<(u16, bool, BoundHistogram<f64>)>| {
            o.iter()
                .find(|(c, p, _)| *c == code && *p == panicked)
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
        let attrs = duration_attributes(
            self.method,
            &self.scheme,
            self.route.as_deref(),
            code,
            panicked,
        );
        if let Ok(mut o) = self.outcomes.write() {
            if let Some(h) = found(&o) {
                drop(o);
                h.record(seconds);
                return;
            }
            if o.len() < MAX_OUTCOMES {
                let h = duration.bind(&attrs);
                h.record(seconds);
                o.push((code, panicked, h));
                return;
            }
        }
        duration.record(seconds, &attrs);
    }
}

/// The attribute set of `http.server.active_requests`.
pub(crate) fn active_attributes(method: &'static str, scheme: &Cow<'static, str>) -> [KeyValue; 2] {
    [
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.scheme", scheme.clone()),
    ]
}

/// The attribute set of `http.server.request.duration`.
pub(crate) fn duration_attributes(
    method: &'static str,
    scheme: &Cow<'static, str>,
    route: Option<&str>,
    code: u16,
    panicked: bool,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(5);
    attrs.extend(active_attributes(method, scheme));
    attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
    if let Some(r) = route {
        attrs.push(KeyValue::new("http.route", r.to_owned()));
    }
    if panicked {
        attrs.push(KeyValue::new("error.type", "panic"));
    } else if code >= 500 {
        attrs.push(KeyValue::new("error.type", code.to_string()));
    }
    attrs
}

/// FNV-1a: the key is a few short strings, hashed once per request.
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

type Routes = HashMap<u64, Vec<Arc<RouteMetrics>>, BuildHasherDefault<Prehashed>>;

/// The bound handles of one layer's instruments.
#[derive(Default)]
pub(crate) struct BoundCache {
    routes: RwLock<Routes>,
}

impl BoundCache {
    /// The handles of this (method, scheme, route); `None` past the cap.
    pub(crate) fn route(
        &self,
        active: &UpDownCounter<i64>,
        method: &'static str,
        scheme: &Cow<'static, str>,
        route: Option<&str>,
    ) -> Option<Arc<RouteMetrics>> {
        let mut h = Fnv::default();
        h.write(method.as_bytes());
        h.write(&[0xff]);
        h.write(scheme.as_bytes());
        h.write(&[0xff]);
        match route {
            Some(r) => h.write(r.as_bytes()),
            None => h.write(&[0xfe]),
        }
        let key = h.finish();
        let matches = |m: &&Arc<RouteMetrics>| {
            m.method == method && m.scheme == *scheme && m.route.as_deref() == route
        };
        if let Ok(routes) = self.routes.read()
            && let Some(m) = routes.get(&key).and_then(|v| v.iter().find(matches))
        {
            return Some(m.clone());
        }
        let mut routes = self.routes.write().ok()?;
        if let Some(m) = routes.get(&key).and_then(|v| v.iter().find(matches)) {
            return Some(m.clone());
        }
        if routes.values().map(Vec::len).sum::<usize>() >= MAX_ROUTES {
            return None;
        }
        let m = Arc::new(RouteMetrics {
            method,
            scheme: scheme.clone(),
            route: route.map(Box::from),
            span_name: crate::span_name::span_name(method, route).into(),
            active: active.bind(&active_attributes(method, scheme)),
            outcomes: RwLock::new(Vec::new()),
        });
        routes.entry(key).or_default().push(m.clone());
        Some(m)
    }
}
