//! Audit and security events: typed, masked, and without diagnostics.
//!
//! An [`Auditor`] turns what happened (a login attempt, a rejected token, a
//! denied permission, a configuration change…) into one `tracing` event
//! with a fixed set of fields, which otelwire exports as an OpenTelemetry
//! log record: its event name is the event's name (`auth.login`), it
//! carries the trace and span ids of the span it was emitted in, and its
//! attributes are the fields below. There is never a backtrace, an error
//! chain or a local variable in it: only the typed fields.
//!
//! ```
//! use otelwire::audit::{Auditor, LoginOutcome, LoginFailure, MaskingPolicy, User};
//! # let meter = otelwire::opentelemetry::global::meter("doc");
//! let audit = Auditor::new(&meter, MaskingPolicy::default());
//! audit.login(User::email("jane@example.com"), LoginOutcome::Failure(LoginFailure::WrongPassword),
//!     Some("203.0.113.9".parse().unwrap()));
//! // → WARN, target otelwire::security, event.name = "auth.login",
//! //   user.email = "j***@example.com", client.address = "203.0.113.0",
//! //   auth.outcome = "failure", auth.reason = "wrong_password"
//! assert_eq!(MaskingPolicy::default().mask_email("jane@example.com"), "j***@example.com");
//! ```
//!
//! # Categories
//!
//! Every event has the target [`SECURITY_TARGET`] (`otelwire::security`)
//! or [`AUDIT_TARGET`] (`otelwire::audit`) and the field `event.category`
//! (`security` or `audit`), so that outputs can route them apart from
//! application logs. Security: authentication and authorization (login,
//! logout, token issued, token rejected, password changed, permission
//! denied). Audit: who changed or read what (configuration changed,
//! sensitive data accessed).
//!
//! # Fields
//!
//! | Event (`event.name`) | Category | Level | Fields |
//! |---|---|---|---|
//! | `auth.login` | security | INFO on success, WARN on failure | user, `client.address`, `auth.outcome` (`success`, `failure`), `auth.reason` |
//! | `auth.logout` | security | INFO | user, `client.address` |
//! | `auth.token.issued` | security | INFO | user, `auth.scheme` (`bearer`, …) |
//! | `auth.token.rejected` | security | WARN | `client.address`, `auth.reason` (`missing`, `malformed`, `expired`, `revoked`, `unknown`) |
//! | `auth.password.changed` | security | INFO | user, `client.address` |
//! | `auth.permission.denied` | security | WARN | user, `auth.action`, `auth.resource` |
//! | `config.changed` | audit | INFO | user, `config.key`, `config.old_value`, `config.new_value` |
//! | `data.accessed` | audit | INFO | user, `data.resource`, `data.action` |
//!
//! "user" is `user.id` (as given) and `user.email` (masked) or `user.hash`
//! (keyed pseudonym), per the [`MaskingPolicy`]. Every event also has
//! `event.name` and `event.category`.
//!
//! # Masking
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `OTELWIRE_AUDIT_EMAIL` | `mask` | `mask`: `j***@example.com`; `hmac`: `user.hash`, an HMAC-SHA-256 of the lower-cased address with the key below (the same address always gives the same pseudonym, which cannot be reversed without the key) |
//! | `OTELWIRE_AUDIT_HMAC_KEY` | — | the pseudonymisation key, at least 16 bytes (required with `hmac`; never printed) |
//! | `OTELWIRE_AUDIT_CLIENT_ADDRESS` | `truncate` | `keep`; `truncate`: IPv4 to its /24, IPv6 to its /48; `drop` |
//!
//! A credential passed by mistake where a user is expected is masked like
//! any e-mail address (a value that is not an address becomes `***`), and
//! configuration values whose key is named like a secret (`password`,
//! `token`, `api_key`, … as in [`DEFAULT_SECRET_NAMES`](crate::DEFAULT_SECRET_NAMES))
//! are replaced by `[REDACTED]`. No event takes a password or a token.
//!
//! The local lines of these events (console, files) leave out the fields
//! of the enclosing spans, and no span field copied onto log records
//! replaces one of the event's own: a request span's full `client.address`
//! never undoes `OTELWIRE_AUDIT_CLIENT_ADDRESS=drop` or `truncate`.
//!
//! # Metrics
//!
//! `auth.login.attempts{outcome}` and `auth.permission.denied{auth.action}`
//! (counters).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use sha2::Sha256;
use tracing::Level;

use crate::InitError;
use crate::redact::{REDACTED, Redactor};

/// The target of audit events.
pub const AUDIT_TARGET: &str = "otelwire::audit";
/// The target of security events.
pub const SECURITY_TARGET: &str = "otelwire::security";
/// The field that names an event's category (`audit` or `security`).
pub const CATEGORY_FIELD: &str = "event.category";
/// The field that names the event (`auth.login`, …).
pub const EVENT_NAME_FIELD: &str = "event.name";

/// The variable that chooses how e-mail addresses are masked.
pub const EMAIL_VAR: &str = "OTELWIRE_AUDIT_EMAIL";
/// The variable that holds the pseudonymisation key.
pub const HMAC_KEY_VAR: &str = "OTELWIRE_AUDIT_HMAC_KEY";
/// The variable that chooses what is kept of client addresses.
pub const CLIENT_ADDRESS_VAR: &str = "OTELWIRE_AUDIT_CLIENT_ADDRESS";

const MIN_KEY_LEN: usize = 16;

/// How an event is categorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Who changed or read what.
    Audit,
    /// Authentication and authorization.
    Security,
}

impl Category {
    /// `audit` or `security`, the value of `event.category`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Audit => "audit",
            Category::Security => "security",
        }
    }

    /// The event target, [`AUDIT_TARGET`] or [`SECURITY_TARGET`].
    pub fn target(self) -> &'static str {
        match self {
            Category::Audit => AUDIT_TARGET,
            Category::Security => SECURITY_TARGET,
        }
    }
}

/// How e-mail addresses appear in events.
#[derive(Clone, Default)]
pub enum EmailMasking {
    /// `jane@example.com` → `j***@example.com` in `user.email`.
    #[default]
    Mask,
    /// A keyed pseudonym (hex HMAC-SHA-256, 32 digits) in `user.hash`.
    Hmac(HmacKey),
}

impl fmt::Debug for EmailMasking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmailMasking::Mask => f.write_str("Mask"),
            EmailMasking::Hmac(_) => f.write_str("Hmac(<key hidden>)"),
        }
    }
}

/// A pseudonymisation key; never shown.
#[derive(Clone)]
pub struct HmacKey(Arc<[u8]>);

impl HmacKey {
    /// A key of at least 16 bytes.
    pub fn new(key: impl AsRef<[u8]>) -> Option<HmacKey> {
        let key = key.as_ref();
        (key.len() >= MIN_KEY_LEN).then(|| HmacKey(key.into()))
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<hidden>)")
    }
}

/// What is kept of a client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// The whole address.
    Keep,
    /// IPv4 to its /24 (`203.0.113.0`), IPv6 to its /48.
    #[default]
    Truncate,
    /// No `client.address` at all.
    Drop,
}

/// How personal data is masked in audit and security events.
#[derive(Debug, Clone, Default)]
pub struct MaskingPolicy {
    /// E-mail addresses.
    pub email: EmailMasking,
    /// Client addresses.
    pub client_address: AddressPolicy,
}

impl MaskingPolicy {
    /// The policy from `OTELWIRE_AUDIT_EMAIL`, `OTELWIRE_AUDIT_HMAC_KEY`
    /// and `OTELWIRE_AUDIT_CLIENT_ADDRESS`.
    pub fn from_env() -> Result<MaskingPolicy, InitError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The policy from `lookup` (a variable's name → its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InitError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let email = match get(EMAIL_VAR).map(|v| v.trim().to_ascii_lowercase()) {
            None => EmailMasking::Mask,
            Some(v) if v == "mask" => EmailMasking::Mask,
            Some(v) if v == "hmac" => {
                let key = get(HMAC_KEY_VAR).ok_or_else(|| {
                    InitError::env(
                        HMAC_KEY_VAR,
                        "",
                        format!("{EMAIL_VAR}=hmac needs a key of at least {MIN_KEY_LEN} bytes"),
                    )
                })?;
                EmailMasking::Hmac(HmacKey::new(key.as_bytes()).ok_or_else(|| {
                    InitError::env(
                        HMAC_KEY_VAR,
                        "<hidden>",
                        format!("a key of at least {MIN_KEY_LEN} bytes"),
                    )
                })?)
            }
            Some(v) => return Err(InitError::env(EMAIL_VAR, &v, "mask or hmac")),
        };
        let client_address = match get(CLIENT_ADDRESS_VAR).map(|v| v.trim().to_ascii_lowercase()) {
            None => AddressPolicy::default(),
            Some(v) => match v.as_str() {
                "keep" => AddressPolicy::Keep,
                "truncate" => AddressPolicy::Truncate,
                "drop" => AddressPolicy::Drop,
                _ => {
                    return Err(InitError::env(
                        CLIENT_ADDRESS_VAR,
                        &v,
                        "keep, truncate or drop",
                    ));
                }
            },
        };
        Ok(MaskingPolicy {
            email,
            client_address,
        })
    }

    /// `jane@example.com` → `j***@example.com`; anything that is not an
    /// address → `***`.
    pub fn mask_email(&self, email: &str) -> String {
        let email = email.trim();
        match email.rsplit_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && domain.contains('.')
                    && !email.chars().any(char::is_whitespace) =>
            {
                let first = local.chars().next().unwrap_or('*');
                format!("{first}***@{domain}")
            }
            _ => "***".to_owned(),
        }
    }

    /// The keyed pseudonym of `email` (case and surrounding blanks ignored),
    /// or `None` under [`EmailMasking::Mask`].
    pub fn pseudonym(&self, email: &str) -> Option<String> {
        let EmailMasking::Hmac(key) = &self.email else {
            return None;
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0).ok()?;
        mac.update(email.trim().to_lowercase().as_bytes());
        let digest = mac.finalize().into_bytes();
        Some(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The client address as the policy keeps it.
    pub fn client_address(&self, addr: IpAddr) -> Option<String> {
        match self.client_address {
            AddressPolicy::Keep => Some(addr.to_string()),
            AddressPolicy::Drop => None,
            AddressPolicy::Truncate => Some(match addr {
                IpAddr::V4(v4) => {
                    let [a, b, c, _] = v4.octets();
                    std::net::Ipv4Addr::new(a, b, c, 0).to_string()
                }
                IpAddr::V6(v6) => {
                    let s = v6.segments();
                    std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
                }
            }),
        }
    }
}

/// Who an event is about: an id, an e-mail address, or both. The id is
/// shown as given (use an opaque id); the address per the policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct User<'a> {
    id: Option<&'a str>,
    email: Option<&'a str>,
}

impl<'a> User<'a> {
    /// A user known by e-mail address.
    pub fn email(email: &'a str) -> Self {
        User {
            id: None,
            email: Some(email),
        }
    }

    /// A user known by id.
    pub fn id(id: &'a str) -> Self {
        User {
            id: Some(id),
            email: None,
        }
    }

    /// Adds the e-mail address.
    #[must_use]
    pub fn with_email(mut self, email: &'a str) -> Self {
        self.email = Some(email);
        self
    }
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The credentials were verified.
    Success,
    /// They were not.
    Failure(LoginFailure),
}

/// Why a login failed (for the log only; never tell the client which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// No such user.
    UnknownUser,
    /// The password did not match.
    WrongPassword,
    /// The account is locked or disabled.
    Locked,
    /// The request was malformed.
    BadRequest,
}

impl LoginFailure {
    fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown_user",
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Locked => "locked",
            LoginFailure::BadRequest => "bad_request",
        }
    }
}

/// Why a token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// None was presented.
    Missing,
    /// It could not be read.
    Malformed,
    /// It was valid once.
    Expired,
    /// It was revoked (logged out).
    Revoked,
    /// It is well formed but unknown (or its signature is wrong).
    Unknown,
}

impl TokenRejection {
    fn as_str(self) -> &'static str {
        match self {
            TokenRejection::Missing => "missing",
            TokenRejection::Malformed => "malformed",
            TokenRejection::Expired => "expired",
            TokenRejection::Revoked => "revoked",
            TokenRejection::Unknown => "unknown",
        }
    }
}

/// Emits audit and security events with a masking policy, and counts
/// login attempts and denied permissions. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    policy: Arc<MaskingPolicy>,
    redactor: Redactor,
    login_attempts: Counter<u64>,
    permission_denied: Counter<u64>,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The masked forms of a [`User`].
struct Shown {
    id: Option<String>,
    email: Option<String>,
    hash: Option<String>,
}

/// One event, at a level chosen at run time (`tracing` fixes the level per
/// call site, so there is one call site per level).
macro_rules! emit {
    ($level:expr, $category:expr, $name:literal, $($fields:tt)*) => {{
        let category: Category = $category;
        match ($level, category) {
            (Level::WARN, Category::Security) => tracing::event!(name: $name, target: "otelwire::security", Level::WARN,
                event.name = $name, event.category = "security", $($fields)*),
            (_, Category::Security) => tracing::event!(name: $name, target: "otelwire::security", Level::INFO,
                event.name = $name, event.category = "security", $($fields)*),
            (Level::WARN, Category::Audit) => tracing::event!(name: $name, target: "otelwire::audit", Level::WARN,
                event.name = $name, event.category = "audit", $($fields)*),
            (_, Category::Audit) => tracing::event!(name: $name, target: "otelwire::audit", Level::INFO,
                event.name = $name, event.category = "audit", $($fields)*),
        }
    }};
}

impl Auditor {
    /// An auditor whose counters come from `meter`.
    pub fn new(meter: &Meter, policy: MaskingPolicy) -> Auditor {
        Auditor {
            policy: Arc::new(policy),
            redactor: Redactor::default(),
            login_attempts: meter
                .u64_counter("auth.login.attempts")
                .with_description("Login attempts, by outcome.")
                .with_unit("{attempt}")
                .build(),
            permission_denied: meter
                .u64_counter("auth.permission.denied")
                .with_description("Requests refused for lack of a permission.")
                .with_unit("{request}")
                .build(),
        }
    }

    /// An auditor with the policy from the environment (see the
    /// [module docs](self#masking)).
    pub fn from_env(meter: &Meter) -> Result<Auditor, InitError> {
        Ok(Auditor::new(meter, MaskingPolicy::from_env()?))
    }

    /// Replaces the secret names used for configuration keys (default:
    /// [`DEFAULT_SECRET_NAMES`](crate::DEFAULT_SECRET_NAMES); pass
    /// [`Telemetry::redactor`](crate::Telemetry::redactor) to follow the
    /// pipeline's).
    #[must_use]
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &MaskingPolicy {
        &self.policy
    }

    fn show(&self, user: User<'_>) -> Shown {
        let (email, hash) = match user.email {
            None => (None, None),
            Some(e) => match self.policy.pseudonym(e) {
                Some(h) => (None, Some(h)),
                None => (Some(self.policy.mask_email(e)), None),
            },
        };
        Shown {
            id: user.id.map(str::to_owned),
            email,
            hash,
        }
    }

    fn addr(&self, client: Option<IpAddr>) -> Option<String> {
        client.and_then(|a| self.policy.client_address(a))
    }

    /// A login attempt, reported once its outcome is known (after the
    /// credentials were checked).
    pub fn login(&self, user: User<'_>, outcome: LoginOutcome, client: Option<IpAddr>) {
        let u = self.show(user);
        let (level, result, reason) = match outcome {
            LoginOutcome::Success => (Level::INFO, "success", None),
            LoginOutcome::Failure(f) => (Level::WARN, "failure", Some(f.as_str())),
        };
        self.login_attempts
            .add(1, &[KeyValue::new("outcome", result)]);
        emit!(
            level,
            Category::Security,
            "auth.login",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            client.address = self.addr(client).as_deref(),
            auth.outcome = result,
            auth.reason = reason,
            "login {result}"
        );
    }

    /// A logout.
    pub fn logout(&self, user: User<'_>, client: Option<IpAddr>) {
        let u = self.show(user);
        emit!(
            Level::INFO,
            Category::Security,
            "auth.logout",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            client.address = self.addr(client).as_deref(),
            "logout"
        );
    }

    /// A token was issued (`kind`: `bearer`, `refresh`, …; never the token).
    /// The field is `auth.scheme`: a field named like `token` would itself
    /// be redacted.
    pub fn token_issued(&self, user: User<'_>, kind: &'static str) {
        let u = self.show(user);
        emit!(
            Level::INFO,
            Category::Security,
            "auth.token.issued",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            auth.scheme = kind,
            "{kind} token issued"
        );
    }

    /// A request's token was rejected (or it had none).
    pub fn token_rejected(&self, reason: TokenRejection, client: Option<IpAddr>) {
        let reason = reason.as_str();
        emit!(
            Level::WARN,
            Category::Security,
            "auth.token.rejected",
            client.address = self.addr(client).as_deref(),
            auth.reason = reason,
            "token rejected: {reason}"
        );
    }

    /// A password was changed (never the password).
    pub fn password_changed(&self, user: User<'_>, client: Option<IpAddr>) {
        let u = self.show(user);
        emit!(
            Level::INFO,
            Category::Security,
            "auth.password.changed",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            client.address = self.addr(client).as_deref(),
            "password changed"
        );
    }

    /// `user` may not do `action` (`orders.create`) on `resource`
    /// (`/orders`, a route template or a type, not an identifier).
    pub fn permission_denied(&self, user: User<'_>, action: &str, resource: &str) {
        let u = self.show(user);
        self.permission_denied
            .add(1, &[KeyValue::new("auth.action", action.to_owned())]);
        emit!(
            Level::WARN,
            Category::Security,
            "auth.permission.denied",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            auth.action = action,
            auth.resource = resource,
            "permission denied: {action} on {resource}"
        );
    }

    /// A configuration value changed from `old` to `new`; both are
    /// `[REDACTED]` when `key` is named like a secret.
    pub fn config_changed(&self, user: User<'_>, key: &str, old: Option<&str>, new: Option<&str>) {
        let u = self.show(user);
        let secret = self.redactor.is_secret(key);
        let shown = |v: Option<&str>| v.map(|v| if secret { REDACTED } else { v }.to_owned());
        emit!(
            Level::INFO,
            Category::Audit,
            "config.changed",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            config.key = key,
            config.old_value = shown(old).as_deref(),
            config.new_value = shown(new).as_deref(),
            "configuration changed: {key}"
        );
    }

    /// `user` did `action` (`read`, `export`) on sensitive `resource`.
    pub fn data_accessed(&self, user: User<'_>, resource: &str, action: &str) {
        let u = self.show(user);
        emit!(
            Level::INFO,
            Category::Audit,
            "data.accessed",
            user.id = u.id.as_deref(),
            user.email = u.email.as_deref(),
            user.hash = u.hash.as_deref(),
            data.resource = resource,
            data.action = action,
            "sensitive data accessed: {action} {resource}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_addresses_are_masked() {
        let p = MaskingPolicy::default();
        assert_eq!(p.mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(p.mask_email(" Émile@exämple.org "), "É***@exämple.org");
        for not_an_address in ["demo-password", "@example.com", "a@b", "x y@z.com", ""] {
            assert_eq!(p.mask_email(not_an_address), "***", "{not_an_address}");
        }
        assert_eq!(p.pseudonym("jane@example.com"), None);
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let policy = |key: &str| {
            MaskingPolicy::from_lookup(|k| match k {
                EMAIL_VAR => Some("hmac".into()),
                HMAC_KEY_VAR => Some(key.into()),
                _ => None,
            })
            .unwrap()
        };
        let a = policy("0123456789abcdef-one");
        let b = policy("0123456789abcdef-two");
        let h = a.pseudonym("Jane@Example.com ").unwrap();
        assert_eq!(h.len(), 32);
        assert_eq!(a.pseudonym("jane@example.com").unwrap(), h);
        assert_ne!(b.pseudonym("jane@example.com").unwrap(), h);
        assert!(!format!("{a:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn bad_settings_name_the_variable_and_hide_the_key() {
        let err = MaskingPolicy::from_lookup(|k| match k {
            EMAIL_VAR => Some("hmac".into()),
            HMAC_KEY_VAR => Some("short-secret".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("OTELWIRE_AUDIT_HMAC_KEY=<hidden>"), "{err}");
        assert!(!err.contains("short-secret"));
        let err = MaskingPolicy::from_lookup(|k| (k == EMAIL_VAR).then(|| "hmac".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("OTELWIRE_AUDIT_HMAC_KEY"), "{err}");
        let err = MaskingPolicy::from_lookup(|k| (k == CLIENT_ADDRESS_VAR).then(|| "blur".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "OTELWIRE_AUDIT_CLIENT_ADDRESS=blur: keep, truncate or drop"
        );
    }

    #[test]
    fn client_addresses_follow_the_policy() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12::1".parse().unwrap();
        let with = |a| MaskingPolicy {
            client_address: a,
            ..Default::default()
        };
        assert_eq!(
            with(AddressPolicy::Keep).client_address(v4).unwrap(),
            "203.0.113.77"
        );
        assert_eq!(
            with(AddressPolicy::Truncate).client_address(v4).unwrap(),
            "203.0.113.0"
        );
        assert_eq!(
            with(AddressPolicy::Truncate).client_address(v6).unwrap(),
            "2001:db8:abcd::"
        );
        assert_eq!(with(AddressPolicy::Drop).client_address(v4), None);
    }
}
