//! The web configuration file (`--web.config.file`): Prometheus'
//! exporter-toolkit format, parsed strictly.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! http_server_config:
//!   http2: true
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
//! ```
//!
//! Relative file names are resolved against the directory of the web
//! configuration file, as the toolkit does. Unknown fields, unknown enum
//! values and settings the toolkit has but Tidemark does not implement
//! (`client_allowed_sans`, `rate_limit`) are errors naming the field: a
//! security setting that is silently ignored is worse than a refusal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a web configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebConfigError {
    /// A file (the configuration, a certificate, a key) could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file it is ("web config file", "cert_file", …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or has an unknown field (the message names it,
    /// with line and column).
    #[error("invalid web config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML parser's message.
        message: String,
    },
    /// One setting has a value Tidemark cannot use.
    #[error("invalid web config: {field}: {reason}")]
    Invalid {
        /// The field, as written in the file (`tls_server_config.min_version`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A certificate, key or CA file does not hold what it should.
    #[error("invalid web config: {field} ({path}): {reason}")]
    Pem {
        /// The field naming the file.
        field: &'static str,
        /// The file (or "<inline>").
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl WebConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid { field: field.into(), reason: reason.into() }
    }
}

/// The file's shape, as written.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    /// Serve HTTPS with this TLS configuration; absent: plain HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// HTTP/2 and extra response headers.
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
    /// User name → bcrypt hash; empty: no authentication.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
    /// Accepted only to reject it with a clear message.
    #[serde(default)]
    rate_limit: Option<serde_norway::Value>,
}

/// `tls_server_config`. Its `Debug` output leaves out the inline `key`.
#[derive(Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// Server certificate chain (PEM) file.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Server private key (PEM) file.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Server certificate chain, inline PEM.
    #[serde(default)]
    pub cert: Option<String>,
    /// Server private key, inline PEM.
    #[serde(default)]
    pub key: Option<String>,
    /// `NoClientCert` (default), `RequestClientCert`,
    /// `RequireAnyClientCert` (or `RequireClientCert`),
    /// `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`.
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// The same, inline PEM.
    #[serde(default)]
    pub client_ca: Option<String>,
    /// Not supported: rejected when non-empty.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    /// `TLS12` (default) or `TLS13`; `TLS10`/`TLS11` are rejected.
    #[serde(default)]
    pub min_version: Option<String>,
    /// `TLS12` or `TLS13` (default).
    #[serde(default)]
    pub max_version: Option<String>,
    /// TLS 1.2 cipher suites by Go name; empty: rustls' defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Whether the server's order of `cipher_suites` wins (default true).
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    /// Key-exchange groups by Go name (`X25519`, `CurveP256`, `CurveP384`).
    #[serde(default)]
    pub curve_preferences: Vec<String>,
}

impl std::fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("client_auth_type", &self.client_auth_type)
            .field("client_ca_file", &self.client_ca_file)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .finish_non_exhaustive()
    }
}

/// `http_server_config`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Offer HTTP/2 over TLS through ALPN (default true).
    #[serde(default)]
    pub http2: Option<bool>,
    /// Headers added to every response (only the toolkit's five).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The response headers the toolkit lets a web config set, with the values
/// it restricts (`None`: any value).
const ALLOWED_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

/// A TLS protocol version the file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// `client_auth_type`, as Go's `tls.ClientAuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified against a CA.
    RequireAnyClientCert,
    /// Verified against the client CA if one is sent.
    VerifyClientCertIfGiven,
    /// Required and verified against the client CA.
    RequireAndVerifyClientCert,
}

/// Where PEM data comes from: a file or inline text.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file (already resolved against the config's directory).
    File(PathBuf),
    /// Inline text.
    Inline(String),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::File(p) => write!(f, "File({})", p.display()),
            // Inline text may be a private key: never printed.
            PemSource::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// The TLS settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain.
    pub cert: PemSource,
    /// The server's private key.
    pub key: PemSource,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// Client CA certificates.
    pub client_ca: Option<PemSource>,
    /// Lowest version offered.
    pub min_version: TlsVersion,
    /// Highest version offered.
    pub max_version: TlsVersion,
    /// TLS 1.2 suites (Go names, validated); empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
    /// Server order of suites wins.
    pub prefer_server_cipher_suites: bool,
    /// Key-exchange groups (Go names, validated); empty: rustls' defaults.
    pub curve_preferences: Vec<String>,
}

/// A checked web configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebConfig {
    /// TLS, if served over HTTPS.
    pub tls: Option<TlsSettings>,
    /// Offer HTTP/2 (over TLS only).
    pub http2: bool,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// User → bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            what: "web config file",
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir).map_err(|e| match e {
            WebConfigError::Parse { message, .. } => WebConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and checks YAML `text`, resolving relative file names
    /// against `dir`. Files are not read here (see [`super::tls`]).
    pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, WebConfigError> {
        // An empty file is a valid, empty configuration (plain HTTP, no auth).
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_norway::from_str(text)
                .map_err(|e| WebConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?
        };
        WebConfig::check(file, dir)
    }

    fn check(file: WebConfigFile, dir: &Path) -> Result<WebConfig, WebConfigError> {
        if file.rate_limit.is_some() {
            return Err(WebConfigError::invalid(
                "rate_limit",
                "not supported by Tidemark; use a reverse proxy to rate-limit",
            ));
        }
        let tls = file.tls_server_config.map(|t| check_tls(t, dir)).transpose()?;
        let mut headers = Vec::new();
        for (name, value) in &file.http_server_config.headers {
            let Some((canonical, allowed)) = ALLOWED_HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(name)) else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(h, _)| *h).collect();
                return Err(WebConfigError::invalid(
                    format!("http_server_config.headers.{name}"),
                    format!("this header cannot be set; allowed: {}", names.join(", ")),
                ));
            };
            if value.is_empty() {
                continue; // "Unset if blank."
            }
            if let Some(allowed) = allowed {
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                    return Err(WebConfigError::invalid(
                        format!("http_server_config.headers.{canonical}"),
                        format!("invalid value {value:?}; accepted: {}", allowed.join(", ")),
                    ));
                }
            }
            if axum::http::HeaderValue::from_str(value).is_err() {
                return Err(WebConfigError::invalid(
                    format!("http_server_config.headers.{canonical}"),
                    "not a valid header value",
                ));
            }
            headers.push(((*canonical).to_owned(), value.clone()));
        }
        for (user, hash) in &file.basic_auth_users {
            if user.contains(':') {
                return Err(WebConfigError::invalid(
                    format!("basic_auth_users.{user}"),
                    "a user name cannot contain ':'",
                ));
            }
            // Checked now so a typo fails at startup, not at the first login.
            if bcrypt_cost(hash).is_none() {
                return Err(WebConfigError::invalid(
                    format!("basic_auth_users.{user}"),
                    "not a bcrypt hash ($2a$, $2b$ or $2y$ followed by the cost and 53 characters)",
                ));
            }
        }
        Ok(WebConfig {
            tls,
            http2: file.http_server_config.http2.unwrap_or(true),
            headers,
            basic_auth_users: file.basic_auth_users,
        })
    }
}

/// The cost of a well-formed bcrypt hash (`$2y$10$` + 53 characters).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash.strip_prefix("$2a$").or_else(|| hash.strip_prefix("$2b$")).or_else(|| hash.strip_prefix("$2y$"))?;
    let (cost, tail) = rest.split_once('$')?;
    let cost: u32 = cost.parse().ok()?;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    ((4..=31).contains(&cost) && tail.len() == 53 && tail.bytes().all(alphabet)).then_some(cost)
}

fn resolve(dir: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_owned()
    } else {
        dir.join(p)
    }
}

fn source(
    dir: &Path,
    file: Option<String>,
    inline: Option<String>,
    file_field: &str,
    inline_field: &str,
) -> Result<Option<PemSource>, WebConfigError> {
    match (file.filter(|f| !f.is_empty()), inline.filter(|i| !i.is_empty())) {
        (Some(_), Some(_)) => Err(WebConfigError::invalid(
            format!("tls_server_config.{file_field}"),
            format!("give either {file_field} or {inline_field}, not both"),
        )),
        (Some(f), None) => Ok(Some(PemSource::File(resolve(dir, &f)))),
        (None, Some(i)) => Ok(Some(PemSource::Inline(i))),
        (None, None) => Ok(None),
    }
}

fn version(field: &str, v: Option<&str>, default: TlsVersion) -> Result<TlsVersion, WebConfigError> {
    match v {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some(old @ ("TLS10" | "TLS11")) => Err(WebConfigError::invalid(
            format!("tls_server_config.{field}"),
            format!("{old} is not supported (rustls implements TLS 1.2 and 1.3 only); use TLS12 or TLS13"),
        )),
        Some(other) => Err(WebConfigError::invalid(
            format!("tls_server_config.{field}"),
            format!("unknown TLS version {other:?}; use TLS12 or TLS13"),
        )),
    }
}

fn check_tls(t: TlsServerConfig, dir: &Path) -> Result<TlsSettings, WebConfigError> {
    let cert = source(dir, t.cert_file, t.cert, "cert_file", "cert")?
        .ok_or_else(|| WebConfigError::invalid("tls_server_config.cert_file", "missing cert_file (or cert)"))?;
    let key = source(dir, t.key_file, t.key, "key_file", "key")?
        .ok_or_else(|| WebConfigError::invalid("tls_server_config.key_file", "missing key_file (or key)"))?;
    let client_ca = source(dir, t.client_ca_file, t.client_ca, "client_ca_file", "client_ca")?;
    let client_auth = match t.client_auth_type.as_deref() {
        None | Some("") | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("RequestClientCert") => ClientAuth::RequestClientCert,
        Some("RequireAnyClientCert") | Some("RequireClientCert") => ClientAuth::RequireAnyClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(other) => {
            return Err(WebConfigError::invalid(
                "tls_server_config.client_auth_type",
                format!(
                    "invalid ClientAuth {other:?}; use NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            ))
        }
    };
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(WebConfigError::invalid(
            "tls_server_config.client_ca_file",
            "client CAs have been configured without a client auth policy (set client_auth_type)",
        ));
    }
    let verifies = matches!(client_auth, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert);
    if verifies && client_ca.is_none() {
        return Err(WebConfigError::invalid(
            "tls_server_config.client_ca_file",
            "client_auth_type verifies client certificates, so client_ca_file (or client_ca) is required",
        ));
    }
    if !t.client_allowed_sans.is_empty() {
        return Err(WebConfigError::invalid(
            "tls_server_config.client_allowed_sans",
            "not supported by Tidemark; verify client certificates against a dedicated client_ca_file instead",
        ));
    }
    let min_version = version("min_version", t.min_version.as_deref(), TlsVersion::Tls12)?;
    let max_version = version("max_version", t.max_version.as_deref(), TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err(WebConfigError::invalid("tls_server_config.min_version", "is above max_version"));
    }
    for s in &t.cipher_suites {
        if super::tls::cipher_suite(s).is_none() {
            return Err(WebConfigError::invalid(
                "tls_server_config.cipher_suites",
                format!(
                    "unknown or unsupported cipher suite {s:?}; rustls supports {}",
                    super::tls::CIPHER_SUITE_NAMES.join(", ")
                ),
            ));
        }
    }
    for c in &t.curve_preferences {
        if super::tls::kx_group(c).is_none() {
            return Err(WebConfigError::invalid(
                "tls_server_config.curve_preferences",
                format!("unknown or unsupported curve {c:?}; use X25519, CurveP256 or CurveP384"),
            ));
        }
    }
    Ok(TlsSettings {
        cert,
        key,
        client_auth,
        client_ca,
        min_version,
        max_version,
        cipher_suites: t.cipher_suites,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        curve_preferences: t.curve_preferences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    fn parse(text: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::parse(text, Path::new("/etc/tidemark"))
    }

    #[test]
    fn a_full_file_parses_with_paths_resolved_against_its_directory() {
        let c = parse(&format!(
            "tls_server_config:\n  cert_file: s.crt\n  key_file: /abs/s.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\nhttp_server_config:\n  http2: false\n  headers:\n    x-frame-options: deny\nbasic_auth_users:\n  alice: {HASH}\n"
        ))
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, PemSource::File("/etc/tidemark/s.crt".into()));
        assert_eq!(tls.key, PemSource::File("/abs/s.key".into()));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert!(!c.http2);
        assert_eq!(c.headers, vec![("X-Frame-Options".to_owned(), "deny".to_owned())]);
        assert_eq!(c.basic_auth_users["alice"], HASH);
    }

    #[test]
    fn an_empty_file_means_plain_http_without_auth() {
        let c = parse("").unwrap();
        assert_eq!(c, WebConfig { http2: true, ..WebConfig::default() });
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases = [
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  certfile: c\n", "certfile"),
            ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
            ("tls_server_config:\n  key_file: b\n", "missing cert_file"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "TLS10 is not supported"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS9\n", "unknown TLS version"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n", "invalid ClientAuth"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "without a client auth policy",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file (or client_ca) is required",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "TLS_RSA_WITH_RC4_128_SHA",
            ),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [CurveP521]\n", "CurveP521"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n", "client_allowed_sans"),
            ("http_server_config:\n  headers:\n    Server: x\n", "headers.Server"),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "accepted: deny, sameorigin"),
            ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: not a bcrypt hash"),
            ("rate_limit:\n  interval: 1s\n", "rate_limit"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e} should contain {want:?}");
        }
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        assert_eq!(bcrypt_cost(HASH), Some(10));
        assert_eq!(bcrypt_cost("$2b$04$abc"), None);
        assert_eq!(bcrypt_cost(&HASH.replace("$10$", "$99$")), None);
    }
}
