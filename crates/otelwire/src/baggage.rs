//! Baggage members copied onto the telemetry of a request:
//! `OTELWIRE_BAGGAGE_ATTRIBUTES=tenant.id,user.tier` (or
//! [`Builder::baggage_attributes`](crate::Builder::baggage_attributes)).
//!
//! W3C baggage travels with a request from service to service (otelwire
//! extracts and injects it by default), but it is not telemetry: no backend
//! sees it. The members named here are copied, under their own names, onto
//!
//! - every span started inside the context that carries the baggage: the
//!   server span of a request that arrived with it, and the spans, client
//!   calls and queries made while serving it;
//! - every log record emitted inside such a span;
//! - every local line (console and files) emitted inside such a span.
//!
//! Only the named members, never all: baggage is user input, set by
//! whoever made the request, so each name is an operator's decision.
//! Values are cut to the attribute value length limit. A name that
//! otelwire would redact ([`Redactor::is_secret`](crate::Redactor::is_secret):
//! `auth_token`, `api_key`, the names of `OTELWIRE_REDACT_FIELDS`) is an
//! [`InitError`](crate::InitError): baggage is no place for secrets.
//!
//! ```
//! use std::collections::HashMap;
//! use otelwire::opentelemetry::propagation::TextMapPropagator;
//! use otelwire::opentelemetry_sdk::propagation::BaggagePropagator;
//!
//! let names = otelwire::baggage::BaggageAttributes::new(["tenant.id"])?;
//! let headers = HashMap::from([(
//!     "baggage".to_owned(),
//!     "tenant.id=acme,session=s3cr3t".to_owned(),
//! )]);
//! let cx = BaggagePropagator::new().extract(&headers);
//! let mut copied = Vec::new();
//! names.for_each_in(&cx, |name, value| copied.push(format!("{name}={value}")));
//! assert_eq!(copied, ["tenant.id=acme"]); // never `session`
//! # Ok::<(), otelwire::baggage::InvalidBaggageName>(())
//! ```

use std::fmt;
use std::sync::Arc;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::{Context, Key, StringValue};

/// The variable naming the baggage members to copy.
pub const BAGGAGE_ATTRIBUTES_VAR: &str = "OTELWIRE_BAGGAGE_ATTRIBUTES";

/// The names of the baggage members copied onto spans, log records and
/// local lines (see the [module docs](self)). Cheap to clone.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BaggageAttributes {
    names: Arc<[Key]>,
}

impl fmt::Debug for BaggageAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.names.iter().map(Key::as_str))
            .finish()
    }
}

/// A name that cannot be a baggage key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBaggageName(String);

impl InvalidBaggageName {
    /// The name refused.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InvalidBaggageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a baggage key: a key is a token of letters, digits and \
             !#$%&'*+-.^_`|~ (W3C Baggage)",
            self.0
        )
    }
}

impl std::error::Error for InvalidBaggageName {}

/// Whether `name` is a W3C baggage key (an RFC 7230 token).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl BaggageAttributes {
    /// The members to copy, by name; duplicates count once. A name that is
    /// not a baggage key is an error.
    pub fn new<I, S>(names: I) -> Result<Self, InvalidBaggageName>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut keys: Vec<Key> = Vec::new();
        for name in names {
            let name = name.into();
            if !is_token(&name) {
                return Err(InvalidBaggageName(name));
            }
            if !keys.iter().any(|k| k.as_str() == name) {
                keys.push(Key::new(name));
            }
        }
        Ok(BaggageAttributes { names: keys.into() })
    }

    /// Parses the variable's value: names separated by commas, spaces
    /// around them ignored, empty entries skipped.
    pub(crate) fn parse(value: &str) -> Result<Self, InvalidBaggageName> {
        Self::new(value.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    /// Whether no member is copied.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, in the order given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(Key::as_str)
    }

    /// Calls `f` with each named member that `cx`'s baggage carries, in the
    /// order of the names.
    pub fn for_each_in(&self, cx: &Context, mut f: impl FnMut(&Key, &StringValue)) {
        if self.names.is_empty() {
            return;
        }
        let baggage = cx.baggage();
        if baggage.is_empty() {
            return;
        }
        for name in self.names.iter() {
            if let Some(value) = baggage.get(name.as_str()) {
                f(name, value);
            }
        }
    }

    /// [`for_each_in`](Self::for_each_in) the current OpenTelemetry context
    /// (inside a `tracing` span: that span's).
    pub(crate) fn for_each_current(&self, f: impl FnMut(&Key, &StringValue)) {
        if self.names.is_empty() {
            return;
        }
        Context::map_current(|cx| self.for_each_in(cx, f));
    }
}

/// The names in force: the builder's, else the variable's, else none. A
/// name the redactor treats as a secret is refused: its value would be
/// copied in clear onto log records and lines, which redact event fields
/// before this copy is made.
pub(crate) fn resolve(
    code: Option<&[String]>,
    env: &crate::config::EnvSource,
    redactor: &crate::Redactor,
) -> Result<BaggageAttributes, crate::InitError> {
    const SECRET: &str = "a baggage member named like a secret would be copied in clear: \
                          leave it out (baggage is no place for secrets)";
    match code {
        Some(names) => {
            let invalid = |value: String, expected: String| crate::InitError::InvalidSetting {
                setting: "baggage_attributes",
                value,
                expected,
            };
            let names = BaggageAttributes::new(names.iter().cloned())
                .map_err(|e| invalid(e.name().to_owned(), e.to_string()))?;
            let secret = names
                .names()
                .find(|n| redactor.is_secret(n))
                .map(str::to_owned);
            match secret {
                Some(secret) => Err(invalid(secret, SECRET.to_owned())),
                None => Ok(names),
            }
        }
        None => match env.get(BAGGAGE_ATTRIBUTES_VAR) {
            Some(value) => {
                let names = BaggageAttributes::parse(&value).map_err(|e| {
                    crate::InitError::env(
                        BAGGAGE_ATTRIBUTES_VAR,
                        &value,
                        format!("a comma-separated list of baggage keys: {e}"),
                    )
                })?;
                let secret = names
                    .names()
                    .find(|n| redactor.is_secret(n))
                    .map(str::to_owned);
                match secret {
                    Some(secret) => Err(crate::InitError::env(
                        BAGGAGE_ATTRIBUTES_VAR,
                        &value,
                        format!("{secret}: {SECRET}"),
                    )),
                    None => Ok(names),
                }
            }
            None => Ok(BaggageAttributes::default()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;

    #[test]
    fn names_are_tokens_trimmed_and_counted_once() {
        let names = BaggageAttributes::parse(" tenant.id , user.tier,,tenant.id ").unwrap();
        assert_eq!(
            names.names().collect::<Vec<_>>(),
            ["tenant.id", "user.tier"]
        );
        assert!(BaggageAttributes::parse("").unwrap().is_empty());
        let err = BaggageAttributes::parse("tenant.id,ten ant").unwrap_err();
        assert_eq!(err.name(), "ten ant");
        assert!(err.to_string().contains("is not a baggage key"), "{err}");
        for bad in ["a=b", "a;b", "é", "a\"b"] {
            assert!(BaggageAttributes::new([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_named_members_are_copied_in_the_order_of_the_names() {
        let cx = Context::new().with_baggage([
            KeyValue::new("session", "s3cr3t"),
            KeyValue::new("user.tier", "gold"),
            KeyValue::new("tenant.id", "acme"),
        ]);
        let names = BaggageAttributes::new(["tenant.id", "user.tier", "absent"]).unwrap();
        let mut seen = Vec::new();
        names.for_each_in(&cx, |k, v| seen.push(format!("{k}={v}")));
        assert_eq!(seen, ["tenant.id=acme", "user.tier=gold"]);

        let none = BaggageAttributes::default();
        none.for_each_in(&cx, |_, _| panic!("nothing is named"));
    }
}
