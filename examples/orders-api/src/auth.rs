//! Logins and bearer tokens.
//!
//! Passwords are stored as Argon2id hashes. A login checks the password
//! (against a dummy hash when the user does not exist, so that an unknown
//! address costs about as much as a wrong password), then reports the
//! outcome, once, as an `auth.login` security event. A token is 32 random
//! bytes in hex, opaque; the server keeps only its SHA-256 and its expiry.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use otelwire::audit::{Auditor, LoginFailure, LoginOutcome, TokenRejection, User};
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::on_db;

/// How long a token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The body of `POST /login`. Its `Debug` never shows the password.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    /// The user's e-mail address.
    pub email: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &"<hidden>")
            .field("password", &"<hidden>")
            .finish()
    }
}

/// An Argon2id hash (PHC string) of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A hash no password matches, checked when the user is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 24];
        let _ = getrandom::fill(&mut random);
        let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
        hash_password(&password).unwrap_or_default()
    })
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A user who presented a valid token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's id.
    pub id: i64,
    /// Their e-mail address.
    pub email: String,
    /// Whether they may place orders.
    pub can_order: bool,
}

/// Why a request was not authenticated.
#[derive(Debug)]
pub enum AuthError {
    /// Wrong e-mail address or password (which one is only in the log).
    BadCredentials,
    /// No usable token.
    Token(TokenRejection),
    /// The database failed.
    Db(sqlx::Error),
    /// Hashing failed on the server.
    Internal,
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Db(e)
    }
}

/// Checks `credentials`; on success stores and returns a new token. Emits
/// `auth.login` (and `auth.token.issued`) after the check.
pub async fn login(
    db: &Db,
    audit: &Auditor,
    credentials: Credentials,
    client: Option<IpAddr>,
) -> Result<String, AuthError> {
    let Credentials { email, password } = credentials;
    let row: Option<(i64, String)> = on_db!(db, p => {
        sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(p)
            .await
    })?;
    let known = row.is_some();
    let (user_id, hash) = match row {
        Some((id, hash)) => (Some(id), hash),
        None => (None, dummy_hash().to_owned()),
    };
    // Argon2 is slow on purpose: off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify(&password, &hash))
        .await
        .map_err(|_| AuthError::Internal)?;
    let user = User::email(&email);
    let Some(user_id) = user_id.filter(|_| matches) else {
        let reason = if known {
            LoginFailure::WrongPassword
        } else {
            LoginFailure::UnknownUser
        };
        audit.login(user, LoginOutcome::Failure(reason), client);
        return Err(AuthError::BadCredentials);
    };
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|_| AuthError::Internal)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let expires = now_secs() + TOKEN_LIFETIME.as_secs() as i64;
    on_db!(db, p => {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(expires)
            .execute(p)
            .await
            .map(drop)
    })?;
    let id = user_id.to_string();
    let user = User::id(&id).with_email(&email);
    audit.login(user, LoginOutcome::Success, client);
    audit.token_issued(user, "bearer");
    Ok(token)
}

/// The user behind an `Authorization` header value. Emits
/// `auth.token.rejected` when there is none.
pub async fn authenticate(
    db: &Db,
    audit: &Auditor,
    authorization: Option<&str>,
    client: Option<IpAddr>,
) -> Result<Principal, AuthError> {
    let reject = |reason| {
        audit.token_rejected(reason, client);
        AuthError::Token(reason)
    };
    let Some(value) = authorization else {
        return Err(reject(TokenRejection::Missing));
    };
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(reject(TokenRejection::Malformed)),
    };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(reject(TokenRejection::Malformed));
    }
    let row: Option<(i64, String, bool, i64)> = on_db!(db, p => {
        sqlx::query_as(
            "SELECT u.id, u.email, u.can_order, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash(&token.to_ascii_lowercase()))
        .fetch_optional(p)
        .await
    })?;
    match row {
        None => Err(reject(TokenRejection::Unknown)),
        Some((_, _, _, expires)) if expires <= now_secs() => Err(reject(TokenRejection::Expired)),
        Some((id, email, can_order, _)) => Ok(Principal {
            id,
            email,
            can_order,
        }),
    }
}
