//! `GET`/`PUT /admin/log-level`: read and change the log filter of a running
//! service, behind a bearer token.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use otelwire::FilterHandle;
use otelwire::audit::{Auditor, MaskingPolicy, TokenRejection, User};

/// The path the admin router serves.
pub const LOG_LEVEL_PATH: &str = "/admin/log-level";

/// The longest `?ttl=` accepted: 7 days, in seconds.
pub const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

/// The audit `config.key` of a log filter change.
pub const LOG_FILTER_KEY: &str = "log.filter";

/// The secret that opens the admin routes, given by the service (the
/// examples read `OTELWIRE_ADMIN_TOKEN`). Never printed.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<hidden>)")
    }
}

impl AdminToken {
    /// A token; `None` when it is empty or only spaces (no admin route
    /// should open with an empty `Authorization: Bearer`).
    pub fn new(token: impl AsRef<str>) -> Option<AdminToken> {
        let token = token.as_ref().trim();
        (!token.is_empty()).then(|| AdminToken(Arc::from(token)))
    }

    /// The token in the environment variable `var`, `None` when it is unset
    /// or empty: mount the admin router only when there is one.
    pub fn from_env(var: &str) -> Option<AdminToken> {
        std::env::var(var).ok().and_then(AdminToken::new)
    }

    /// Whether `given` is the token, in time that does not depend on where
    /// they differ (it depends on the token's length alone).
    fn matches(&self, given: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff = u8::from(given.len() != expected.len());
        for (i, e) in expected.iter().enumerate() {
            diff |= e ^ given.get(i).copied().unwrap_or(0);
        }
        std::hint::black_box(diff) == 0
    }
}

/// A pending revert of a change made with `?ttl=`.
struct Revert {
    /// The filter it restores.
    to: String,
    task: tokio::task::AbortHandle,
}

struct Admin {
    filter: FilterHandle,
    token: AdminToken,
    auditor: Auditor,
    /// Counts changes; a revert only applies to the change it was made for.
    changes: Mutex<(u64, Option<Revert>)>,
}

/// The admin routes: `GET /admin/log-level` answers the log filter in force
/// (text), `PUT /admin/log-level` with a filter as the body puts it in
/// force (`RUST_LOG` syntax; 400 with the reason for a bad one, which
/// changes nothing), and `?ttl=SECONDS` on the `PUT` reverts it that many
/// seconds later. Every request needs `Authorization: Bearer <token>`
/// (401 with `WWW-Authenticate: Bearer` otherwise, and an
/// `auth.token.rejected` security event); each change, and each revert, is
/// a `config.changed` audit event with the old and the new filter and who
/// made it (an authenticated bearer token, from the client address when the
/// server was started with `into_make_service_with_connect_info`; never the
/// token).
///
/// A later `PUT` cancels a pending revert; when it has a `ttl` too, its
/// revert restores the filter from before the first temporary change, so a
/// chain of temporary changes always ends where it started.
///
/// Nothing is served unless the service merges this router:
///
/// ```
/// # let telemetry = otelwire::builder().sdk_disabled(true).build().unwrap();
/// let mut app: axum::Router = axum::Router::new();
/// if let Some(token) = otelwire_axum::AdminToken::from_env("OTELWIRE_ADMIN_TOKEN") {
///     app = app.merge(otelwire_axum::admin_router(telemetry.filter_handle(), token));
/// }
/// ```
///
/// Audit events go through an [`Auditor`] with the default
/// [`MaskingPolicy`]; use [`admin_router_with`] to give the service's own.
pub fn admin_router(filter: FilterHandle, token: AdminToken) -> Router {
    let meter = otelwire::current::meter("otelwire-axum");
    admin_router_with(
        filter,
        token,
        Auditor::new(&meter, MaskingPolicy::default()),
    )
}

/// [`admin_router`] with the service's own [`Auditor`] (its masking policy
/// decides how the client address is shown).
pub fn admin_router_with(filter: FilterHandle, token: AdminToken, auditor: Auditor) -> Router {
    let admin = Arc::new(Admin {
        filter,
        token,
        auditor,
        changes: Mutex::new((0, None)),
    });
    Router::new()
        .route(LOG_LEVEL_PATH, get(get_level).put(put_level))
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

/// The client's address, when the server recorded it.
fn client(req_ext: &http::Extensions) -> Option<IpAddr> {
    req_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

async fn authorize(State(admin): State<Arc<Admin>>, req: Request, next: Next) -> Response {
    let rejection = match req.headers().get(header::AUTHORIZATION) {
        None => Some(TokenRejection::Missing),
        Some(value) => match bearer(value.as_bytes()) {
            None => Some(TokenRejection::Malformed),
            Some(given) if admin.token.matches(given) => None,
            Some(_) => Some(TokenRejection::Unknown),
        },
    };
    match rejection {
        None => next.run(req).await,
        Some(reason) => {
            admin
                .auditor
                .token_rejected(reason, client(req.extensions()));
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response()
        }
    }
}

/// The credentials of `Bearer <credentials>` (the scheme is
/// case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then_some(rest)
}

async fn get_level(State(admin): State<Arc<Admin>>) -> Response {
    text(StatusCode::OK, format!("{}\n", admin.filter.get()))
}

async fn put_level(
    State(admin): State<Arc<Admin>>,
    RawQuery(query): RawQuery,
    ext: http::Extensions,
    body: Bytes,
) -> Response {
    let ttl = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ttl=")));
    let ttl = match ttl.map(parse_ttl).transpose() {
        Ok(t) => t,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let Ok(wanted) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the filter is not UTF-8\n".into());
    };
    let who = who(&admin.auditor, client(&ext));
    let mut changes = admin.changes.lock().unwrap_or_else(|e| e.into_inner());
    let old = match admin.filter.set(wanted.trim()) {
        Ok(old) => old,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let new = admin.filter.get();
    admin
        .auditor
        .config_changed(User::id(&who), LOG_FILTER_KEY, Some(&old), Some(&new));
    changes.0 += 1;
    let change = changes.0;
    let pending = changes.1.take();
    if let Some(p) = &pending {
        p.task.abort();
    }
    if let Some(ttl) = ttl {
        // A chain of temporary changes reverts to where it started.
        let to = pending.map_or(old, |p| p.to);
        let task = tokio::spawn(revert_after(admin.clone(), change, to.clone(), ttl));
        changes.1 = Some(Revert {
            to,
            task: task.abort_handle(),
        });
    }
    drop(changes);
    text(StatusCode::OK, format!("{new}\n"))
}

/// Who made a change, for the audit event: an authenticated bearer token,
/// and the client address as the auditor's policy shows it.
fn who(auditor: &Auditor, client: Option<IpAddr>) -> String {
    match client.and_then(|ip| auditor.policy().client_address(ip)) {
        Some(addr) => format!("admin bearer token (authenticated) from {addr}"),
        None => "admin bearer token (authenticated)".to_owned(),
    }
}

fn parse_ttl(v: &str) -> Result<Duration, String> {
    match v.trim().parse::<u64>() {
        Ok(s) if (1..=MAX_TTL_SECS).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(format!(
            "ttl {v:?} is not a number of seconds from 1 to {MAX_TTL_SECS}"
        )),
    }
}

/// Not part of the request's trace: it runs long after the request ended.
async fn revert_after(admin: Arc<Admin>, change: u64, to: String, ttl: Duration) {
    tokio::time::sleep(ttl).await;
    let mut changes = admin.changes.lock().unwrap_or_else(|e| e.into_inner());
    if changes.0 != change {
        return;
    }
    changes.1 = None;
    changes.0 += 1;
    // `to` was in force before, so it parses.
    if let Ok(old) = admin.filter.set(&to) {
        let new = admin.filter.get();
        admin.auditor.config_changed(
            User::id("admin ttl revert"),
            LOG_FILTER_KEY,
            Some(&old),
            Some(&new),
        );
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let t = AdminToken::new("s3cret-token").unwrap();
        assert!(t.matches(b"s3cret-token"));
        assert!(!t.matches(b"s3cret-tokem"));
        assert!(!t.matches(b"s3cret-token2"));
        assert!(!t.matches(b"s3cret"));
        assert!(!t.matches(b""));
        assert!(AdminToken::new("  ").is_none());
        assert_eq!(format!("{t:?}"), "AdminToken(<hidden>)");
    }

    #[test]
    fn bearer_credentials() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(parse_ttl("600"), Ok(Duration::from_secs(600)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("-1").is_err());
        assert!(parse_ttl("ten").is_err());
        assert!(parse_ttl(&(MAX_TTL_SECS + 1).to_string()).is_err());
    }
}
