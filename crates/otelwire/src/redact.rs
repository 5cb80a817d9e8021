//! Redaction at the source: fields named like secrets are replaced before
//! any output (console, files, OTel log records, span attributes) sees them.
//!
//! [`RedactLayer`] wraps the layers that do the output. For an event or span
//! whose callsite declares no secret-named field (the overwhelming majority)
//! it costs one cached lookup; otherwise it rebuilds the event or span
//! attributes with `[REDACTED]` in place of the secret values and hands the
//! copy to the wrapped layers, so no wrapped layer can ever see the original.
//!
//! The tracing-opentelemetry layer is not wrapped (other crates find it by
//! downcasting, which a wrapper would hide); span attributes are redacted by
//! the span processor instead ([`crate::pipeline`]), before any exporter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The text that replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Name fragments that mark a field as secret. Matching ignores case and
/// treats `-`, `.` and `_` alike, so `X-Api-Key`, `http.request.header.authorization`
/// and `db_password` all match.
pub const DEFAULT_SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
    "credit_card",
    "creditcard",
    "credential",
];

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// Decides which field names are secret.
///
/// ```
/// let r = otelwire::Redactor::new(["pin"]);
/// assert!(r.is_secret("user.Password"));
/// assert!(r.is_secret("X-API-KEY"));
/// assert!(r.is_secret("card_pin"));
/// assert!(!r.is_secret("user.id"));
/// ```
#[derive(Debug, Clone)]
pub struct Redactor {
    id: usize,
    patterns: Arc<[Pattern]>,
    min_len: usize,
}

/// A normalized name fragment and the set of bytes it needs: a name that
/// lacks one of them cannot contain it, which rejects most names with a few
/// word operations instead of a substring search.
#[derive(Debug)]
struct Pattern {
    bytes: Box<[u8]>,
    needs: ByteSet,
}

#[derive(Debug, Clone, Copy, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn of_normalized(bytes: impl Iterator<Item = u8>) -> ByteSet {
        let mut set = ByteSet::default();
        for b in bytes {
            set.0[(b >> 6) as usize] |= 1 << (b & 63);
        }
        set
    }

    fn covers(self, other: ByteSet) -> bool {
        (0..4).all(|i| self.0[i] & other.0[i] == other.0[i])
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(std::iter::empty::<&str>())
    }
}

impl Redactor {
    /// The default secret names plus `extra` (same matching rules).
    pub fn new<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<Box<[u8]>> = DEFAULT_SECRET_NAMES
            .iter()
            .map(|p| normalize(p.as_bytes()))
            .collect();
        for p in extra {
            let n = normalize(p.as_ref().as_bytes());
            if !n.is_empty() && !patterns.contains(&n) {
                patterns.push(n);
            }
        }
        let min_len = patterns.iter().map(|p| p.len()).min().unwrap_or(0);
        let patterns: Vec<Pattern> = patterns
            .into_iter()
            .map(|bytes| Pattern {
                needs: ByteSet::of_normalized(bytes.iter().copied()),
                bytes,
            })
            .collect();
        Redactor {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            patterns: patterns.into(),
            min_len,
        }
    }

    /// Whether a field with this name must never be shown.
    pub fn is_secret(&self, name: &str) -> bool {
        let name = name.as_bytes();
        if name.len() < self.min_len {
            return false;
        }
        let has = ByteSet::of_normalized(name.iter().map(|&b| norm_byte(b)));
        self.patterns
            .iter()
            .any(|p| has.covers(p.needs) && contains_normalized(name, &p.bytes))
    }

    /// [`is_secret`](Self::is_secret) through a small per-thread cache keyed
    /// by the name's address (attribute keys are mostly `&'static str`
    /// field names, seen over and over); a hit is confirmed by comparing the
    /// bytes, so a reused address can never return a stale answer.
    /// The hit path is inlined into the span gate's loop; a miss is cold.
    #[inline(always)]
    fn is_secret_in(&self, cache: &mut [NameEntry; NAME_SLOTS], name: &str) -> bool {
        let ptr = name.as_ptr() as usize;
        let e = &mut cache[name_slot(ptr)];
        if e.ptr == ptr && e.redactor == self.id && *e.name == *name.as_bytes() {
            return e.secret;
        }
        self.cache_miss(e, ptr, name)
    }

    #[cold]
    fn cache_miss(&self, e: &mut NameEntry, ptr: usize, name: &str) -> bool {
        let secret = self.is_secret(name);
        *e = NameEntry {
            ptr,
            redactor: self.id,
            name: name.as_bytes().into(),
            secret,
        };
        secret
    }

    #[cfg(test)]
    pub(crate) fn is_secret_cached(&self, name: &str) -> bool {
        NAME_CACHE.with(|cache| self.is_secret_in(&mut cache.borrow_mut(), name))
    }

    /// Replaces the value of every attribute whose key is secret, with one
    /// look-up of the per-thread cache for the whole slice, and calls `then`
    /// on each attribute in the same pass (the span gate cuts long values
    /// there).
    pub(crate) fn redact_keys_and(
        &self,
        attributes: &mut [opentelemetry::KeyValue],
        mut then: impl FnMut(&mut opentelemetry::KeyValue),
    ) {
        NAME_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            for kv in attributes {
                if self.is_secret_in(&mut cache, kv.key.as_str()) {
                    kv.value = opentelemetry::Value::from(REDACTED);
                }
                then(kv);
            }
        })
    }

    /// Whether this callsite declares any secret-named field; cached per
    /// thread and callsite, so the hot path is a hash lookup.
    pub(crate) fn callsite_has_secret(&self, meta: &'static Metadata<'static>) -> bool {
        let key = (meta as *const Metadata<'static> as usize) ^ (self.id.rotate_left(48));
        CALLSITE_CACHE.with(|cache| {
            if let Some(&hit) = cache.borrow().get(&key) {
                return hit;
            }
            let has = meta.fields().iter().any(|f| self.is_secret(f.name()));
            cache.borrow_mut().insert(key, has);
            has
        })
    }
}

const NAME_SLOTS: usize = 256;

/// The cache slot of a name's address. Field names are packed next to each
/// other with no alignment, so the address is mixed before its top bits
/// are taken (its low bits alone make neighbours collide).
fn name_slot(ptr: usize) -> usize {
    ((ptr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % NAME_SLOTS
}

#[derive(Default)]
struct NameEntry {
    ptr: usize,
    redactor: usize,
    name: Box<[u8]>,
    secret: bool,
}

thread_local! {
    static NAME_CACHE: RefCell<[NameEntry; NAME_SLOTS]> =
        RefCell::new(std::array::from_fn(|_| NameEntry::default()));
}

fn norm_byte(b: u8) -> u8 {
    match b {
        b'-' | b'.' | b' ' => b'_',
        _ => b.to_ascii_lowercase(),
    }
}

fn normalize(s: &[u8]) -> Box<[u8]> {
    s.iter().map(|&b| norm_byte(b)).collect()
}

fn contains_normalized(hay: &[u8], pat: &[u8]) -> bool {
    if pat.len() > hay.len() {
        return false;
    }
    hay.windows(pat.len())
        .any(|w| w.iter().zip(pat).all(|(&a, &b)| norm_byte(a) == b))
}

#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        // Callsites are 'static and aligned: mix so the low bits vary.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

thread_local! {
    static CALLSITE_CACHE: RefCell<HashMap<usize, bool, BuildHasherDefault<IdentityHasher>>> =
        RefCell::new(HashMap::default());
}

/// A field value captured so that it can be replayed with secrets replaced.
enum Owned {
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
    Text(String),
    Redacted,
}

struct Capture<'a> {
    redactor: &'a Redactor,
    out: Vec<(Field, Owned)>,
}

impl Capture<'_> {
    fn push(&mut self, field: &Field, value: impl FnOnce() -> Owned) {
        let v = if self.redactor.is_secret(field.name()) {
            Owned::Redacted
        } else {
            value()
        };
        self.out.push((field.clone(), v));
    }
}

impl Visit for Capture<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, || Owned::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, || Owned::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, || Owned::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, || Owned::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, || Owned::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, || Owned::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, || Owned::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, || Owned::Text(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, || Owned::Text(format!("{value:?}")));
    }
}

/// Replays `captured` as a `ValueSet` of `meta`'s fields and calls `f` with it.
fn with_value_set<R>(
    meta: &'static Metadata<'static>,
    captured: &[(Field, Owned)],
    f: impl FnOnce(&tracing::field::ValueSet<'_>) -> R,
) -> R {
    let displays: Vec<tracing::field::DisplayValue<&str>> = captured
        .iter()
        .map(|(_, v)| match v {
            Owned::Text(s) => tracing::field::display(s.as_str()),
            _ => tracing::field::display(REDACTED),
        })
        .collect();
    let values: Vec<(&Field, Option<&dyn tracing::Value>)> = captured
        .iter()
        .zip(&displays)
        .map(|((field, v), shown)| {
            let value: &dyn tracing::Value = match v {
                Owned::Str(s) => s,
                Owned::I64(n) => n,
                Owned::U64(n) => n,
                Owned::I128(n) => n,
                Owned::U128(n) => n,
                Owned::F64(n) => n,
                Owned::Bool(b) => b,
                Owned::Text(_) | Owned::Redacted => shown,
            };
            (field, Some(value))
        })
        .collect();
    let fields = meta.fields();
    macro_rules! by_len {
        ($($n:literal)*) => {
            match values.len() {
                $($n => {
                    let arr: [(&Field, Option<&dyn tracing::Value>); $n] =
                        values.try_into().unwrap_or_else(|_| unreachable!());
                    f(&fields.value_set(&arr))
                })*
                _ => {
                    // tracing's macros cap a callsite at 32 fields; more cannot
                    // be replayed, so keep only the first 32 (none is a secret
                    // left in clear: the rest are simply not passed on).
                    let mut values = values;
                    values.truncate(32);
                    let arr: [(&Field, Option<&dyn tracing::Value>); 32] =
                        values.try_into().unwrap_or_else(|_| unreachable!());
                    f(&fields.value_set(&arr))
                }
            }
        };
    }
    by_len!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
}

/// A [`Layer`] that shows the layers inside it a redacted copy of every
/// event and span whose fields are named like secrets.
#[derive(Debug)]
pub struct RedactLayer<L> {
    inner: L,
    redactor: Redactor,
}

impl<L> RedactLayer<L> {
    /// Wraps `inner`.
    pub fn new(inner: L, redactor: Redactor) -> Self {
        RedactLayer { inner, redactor }
    }

    fn capture(&self, record: &Record<'_>) -> Vec<(Field, Owned)> {
        let mut c = Capture {
            redactor: &self.redactor,
            out: Vec::new(),
        };
        record.record(&mut c);
        c.out
    }
}

impl<S, L> Layer<S> for RedactLayer<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if !self.redactor.callsite_has_secret(meta) {
            return self.inner.on_new_span(attrs, id, ctx);
        }
        let mut c = Capture {
            redactor: &self.redactor,
            out: Vec::new(),
        };
        attrs.record(&mut c);
        with_value_set(meta, &c.out, |vs| {
            let copy = if attrs.is_root() {
                Attributes::new_root(meta, vs)
            } else if let Some(parent) = attrs.parent() {
                Attributes::child_of(parent.clone(), meta, vs)
            } else {
                Attributes::new(meta, vs)
            };
            self.inner.on_new_span(&copy, id, ctx)
        })
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(meta) = ctx.metadata(span) else {
            return self.inner.on_record(span, values, ctx);
        };
        if !self.redactor.callsite_has_secret(meta) {
            return self.inner.on_record(span, values, ctx);
        }
        let captured = self.capture(values);
        with_value_set(meta, &captured, |vs| {
            self.inner.on_record(span, &Record::new(vs), ctx)
        })
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !self.redactor.callsite_has_secret(meta) {
            return self.inner.on_event(event, ctx);
        }
        let mut c = Capture {
            redactor: &self.redactor,
            out: Vec::new(),
        };
        event.record(&mut c);
        with_value_set(meta, &c.out, |vs| {
            if event.is_contextual() {
                self.inner.on_event(&Event::new(meta, vs), ctx)
            } else {
                let parent = event.parent().cloned();
                self.inner
                    .on_event(&Event::new_child_of(parent, meta, vs), ctx)
            }
        })
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    fn max_level_hint(&self) -> Option<tracing::metadata::LevelFilter> {
        self.inner.max_level_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ignore_case_and_separators() {
        let r = Redactor::default();
        for name in [
            "password",
            "user_password",
            "Authorization",
            "http.request.header.authorization",
            "x-api-key",
            "API_KEY",
            "apiKey",
            "set-cookie",
            "refresh_token",
            "client.secret",
            "private-key",
            "credit_card_number",
        ] {
            assert!(r.is_secret(name), "{name} should be secret");
        }
        for name in ["user", "order_id", "http.route", "message", "pass", "key"] {
            assert!(!r.is_secret(name), "{name} should not be secret");
        }
    }

    #[test]
    fn the_name_cache_never_answers_for_a_reused_address() {
        let r = Redactor::default();
        let other = Redactor::new(["name"]);
        let mut s = String::with_capacity(32);
        s.push_str("user_password");
        assert!(r.is_secret_cached(&s));
        assert!(r.is_secret_cached(&s), "a hit gives the same answer");
        s.clear();
        s.push_str("user_namexxxx");
        assert!(!r.is_secret_cached(&s), "same address, other bytes");
        assert!(other.is_secret_cached(&s), "same bytes, other redactor");
        assert!(r.is_secret_cached("http.request.header.authorization"));
    }

    #[test]
    fn extra_names_are_added() {
        let r = Redactor::new(["ssn"]);
        assert!(r.is_secret("customer.SSN"));
        assert!(!Redactor::default().is_secret("customer.SSN"));
    }
}
