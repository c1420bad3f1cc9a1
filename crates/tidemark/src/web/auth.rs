//! HTTP basic authentication against bcrypt hashes (`basic_auth_users`).
//!
//! bcrypt is deliberately slow (~70 ms at cost 10), so every verdict is
//! cached under a SHA-256 of user, stored hash and password: a client that
//! sends valid credentials on every request costs one bcrypt, not one per
//! request. The cache holds no password in clear, and is bounded
//! ([`CACHE_ENTRIES`]; cleared when full). An unknown user is checked
//! against a dummy hash so that the answer takes as long as for a known one.
//!
//! [`require_basic_auth`] is the same check as an axum middleware, for a
//! service that mounts [`crate::Tidemark::router`] in its own server:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use tidemark::web::{require_basic_auth, BasicAuth};
//! use tidemark::{Tidemark, TidemarkOptions};
//!
//! let tm = Tidemark::open(TidemarkOptions::in_memory()).unwrap();
//! let hash = bcrypt::hash("s3cret", 10).unwrap(); // or a hash from `htpasswd -nBC 10 ""`
//! let auth = Arc::new(BasicAuth::new(BTreeMap::from([("grafana".to_owned(), hash)])));
//! let app: axum::Router = tm.router().layer(axum::middleware::from_fn_with_state(auth, require_basic_auth));
//! # drop(app);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

/// Most cached verdicts.
pub const CACHE_ENTRIES: usize = 1024;

/// A bcrypt hash (cost 10) of a random string, for unknown users.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// The users allowed in, and the verdict cache.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    cache: Mutex<HashMap<[u8; 32], bool>>,
}

impl BasicAuth {
    /// Users by name with their bcrypt hashes; none means every request
    /// is let in.
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth { users, cache: Mutex::new(HashMap::new()) }
    }

    /// Whether any user is configured (otherwise nothing is checked).
    pub fn is_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    fn key(user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [user, hash, password] {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// The cached verdict for these credentials, if any (cheap).
    fn cached(&self, user: &str, password: &str) -> Option<bool> {
        let hash = self.users.get(user).map(String::as_str).unwrap_or(DUMMY_HASH);
        self.cache.lock().get(&Self::key(user, hash, password)).copied()
    }

    /// Whether `user`/`password` match. Runs bcrypt unless the verdict is
    /// cached: call from a blocking context.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let key = Self::key(user, hash, password);
        if let Some(&ok) = self.cache.lock().get(&key) {
            return ok;
        }
        // bcrypt runs for unknown users too (against the dummy hash), so the
        // answer's timing does not tell which user names exist.
        let matches = bcrypt::verify(password, hash).unwrap_or(false);
        let ok = known && matches;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, ok);
        ok
    }

    /// Checks a request's `Authorization` header; `Err` is the 401 to send.
    /// bcrypt runs on tokio's blocking pool.
    pub async fn authorize(self: &Arc<Self>, headers: &HeaderMap) -> Result<(), Response> {
        if !self.is_enabled() {
            return Ok(());
        }
        let Some((user, password)) = headers.get(header::AUTHORIZATION).and_then(parse_basic) else {
            return Err(unauthorized());
        };
        let ok = match self.cached(&user, &password) {
            Some(ok) => ok,
            None => {
                let me = self.clone();
                tokio::task::spawn_blocking(move || me.verify(&user, &password)).await.unwrap_or(false)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(unauthorized())
        }
    }
}

/// 401 with `WWW-Authenticate: Basic`, as the exporter toolkit answers.
pub fn unauthorized() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// axum middleware: `router.layer(axum::middleware::from_fn_with_state(auth, require_basic_auth))`.
pub async fn require_basic_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    match auth.authorize(req.headers()).await {
        Ok(()) => next.run(req).await,
        Err(r) => r,
    }
}

/// `Basic <base64(user:password)>` → (user, password).
fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(rest.trim())?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_rfc4648_vectors() {
        for (plain, enc) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9=v"), None);
        assert_eq!(base64_decode("Zg"), None);
        assert_eq!(base64_decode("Z!=="), None);
    }

    #[test]
    fn credentials_are_checked_and_the_verdict_cached() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)]));
        assert!(auth.verify("alice", "s3cret"));
        assert!(!auth.verify("alice", "wrong"));
        assert!(!auth.verify("bob", "s3cret"));
        assert_eq!(auth.cached("alice", "s3cret"), Some(true));
        assert_eq!(auth.cached("alice", "wrong"), Some(false));
        assert_eq!(auth.cached("alice", "other"), None);
        let header = HeaderValue::from_static("Basic YWxpY2U6czNjcmV0"); // alice:s3cret
        assert_eq!(parse_basic(&header), Some(("alice".into(), "s3cret".into())));
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer YWxpY2U6czNjcmV0")), None);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_bcrypt_hash() {
        // Otherwise unknown users would answer faster than known ones.
        assert!(bcrypt::verify("x", DUMMY_HASH).is_ok());
        assert_eq!(bcrypt_cost_of(DUMMY_HASH), 10);
    }

    fn bcrypt_cost_of(hash: &str) -> u32 {
        hash.split('$').nth(2).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    #[test]
    fn an_unknown_user_costs_a_bcrypt_like_a_known_one() {
        // Cost 10 takes tens of milliseconds on any machine; a lookup that
        // skips bcrypt takes microseconds.
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_owned(), bcrypt::hash("pw", 10).unwrap())]));
        let t = std::time::Instant::now();
        assert!(!auth.verify("mallory", "pw"));
        let unknown = t.elapsed();
        assert!(unknown >= std::time::Duration::from_millis(5), "unknown user answered in {unknown:?}");
    }
}
