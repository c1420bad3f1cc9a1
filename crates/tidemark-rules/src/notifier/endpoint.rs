//! One Alertmanager as configured: where alerts are posted
//! (`<url path>/api/v2/alerts`), the name it goes by in stats and logs
//! (never with credentials), and the HTTP client that reaches it.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use tidemark_remote::forward::{redact_url, split_userinfo};

use super::{AlertmanagerAuth, NotifierError, NotifierTls};

/// The path Alertmanager's API v2 accepts alerts on, below any prefix.
const ALERTS_PATH: &str = "api/v2/alerts";

/// A validated Alertmanager URL.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Where to POST, without userinfo (credentials travel as a header).
    pub(crate) post_url: String,
    /// `post_url` with secret query values redacted: the `alertmanager`
    /// label of the metrics and the name in logs.
    pub(crate) name: String,
    /// The `Authorization` header value, if any.
    pub(crate) authorization: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Endpoint {
    /// Parses `url` (`http[s]://[user:pass@]host[:port][/prefix][?query]`).
    /// Credentials in the URL become basic auth and win over `auth`.
    pub(crate) fn parse(url: &str, auth: Option<&AlertmanagerAuth>) -> Result<Endpoint, NotifierError> {
        let invalid = |reason: String| NotifierError::InvalidUrl { url: redact_url(url), reason };
        let (clean, userinfo) = split_userinfo(url.trim());
        let uri: ureq::http::Uri = clean.parse().map_err(|e| invalid(format!("{e}")))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s,
            Some(other) => return Err(invalid(format!("scheme {other:?} is not http or https"))),
            None => return Err(invalid("no scheme: write http://host:port or https://host:port".into())),
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("no host".into()));
        }
        if clean.contains('#') {
            return Err(invalid("a fragment (#…) has no meaning for an Alertmanager URL".into()));
        }
        let path = join_path(uri.path());
        let post_url = match uri.query() {
            Some(q) => format!("{scheme}://{authority}{path}?{q}"),
            None => format!("{scheme}://{authority}{path}"),
        };
        let authorization = match (userinfo, auth) {
            (Some((user, pass)), _) => Some(basic(&user, &pass)),
            (None, Some(AlertmanagerAuth::Basic { username, password })) => Some(basic(username, password)),
            (None, Some(AlertmanagerAuth::Bearer(token))) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        if let Some(a) = &authorization {
            // A credential with a newline or other non-header byte would be
            // refused at every send; say so now, without printing it.
            ureq::http::HeaderValue::from_str(a)
                .map_err(|_| invalid("the credentials contain characters not allowed in an HTTP header".into()))?;
        }
        Ok(Endpoint { name: redact_url(&post_url), post_url, authorization })
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

/// `prefix` joined with `api/v2/alerts` as Go's `path.Join("/", prefix,
/// "/api/v2/alerts")` does: empty and `.` segments dropped, `..` removing
/// the segment before it, never above the root.
fn join_path(prefix: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for seg in prefix.split('/').chain(ALERTS_PATH.split('/')) {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

/// The ureq agent for every Alertmanager: `timeout` bounds each request
/// from connect to the last byte of the answer; statuses are classified by
/// the sender, not turned into errors.
pub(crate) fn agent(timeout: Duration, tls: &NotifierTls) -> Result<ureq::Agent, NotifierError> {
    let config = ureq::Agent::config_builder()
        .tls_config(tls_config(tls)?)
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(format!("tidemark/{}", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(config.into())
}

fn tls_config(t: &NotifierTls) -> Result<ureq::tls::TlsConfig, NotifierError> {
    let bad =
        |what: &str, p: &Path, reason: String| NotifierError::Tls { what: what.to_string(), path: p.into(), reason };
    let certs = |what: &str, p: &Path| -> Result<Vec<ureq::tls::Certificate<'static>>, NotifierError> {
        let bytes = std::fs::read(p).map_err(|e| bad(what, p, e.to_string()))?;
        let mut out = Vec::new();
        for item in ureq::tls::parse_pem(&bytes) {
            if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(what, p, e.to_string()))? {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err(bad(what, p, "no CERTIFICATE block found".into()));
        }
        Ok(out)
    };
    let mut b = ureq::tls::TlsConfig::builder().disable_verification(t.insecure_skip_verify);
    if let Some(ca) = &t.ca_file {
        b = b.root_certs(ureq::tls::RootCerts::new_with_certs(&certs("ca_file", ca)?));
    }
    match (&t.cert_file, &t.key_file) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let chain = certs("cert_file", cert)?;
            let pem = std::fs::read(key).map_err(|e| bad("key_file", key, e.to_string()))?;
            let key = ureq::tls::PrivateKey::from_pem(&pem).map_err(|e| bad("key_file", key, e.to_string()))?;
            b = b.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        (Some(p), None) | (None, Some(p)) => {
            return Err(bad("cert_file/key_file", p, "a client certificate needs both cert_file and key_file".into()))
        }
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_path_is_a_prefix_of_the_api_path() {
        let p = |u: &str| Endpoint::parse(u, None).map(|e| e.post_url);
        assert_eq!(p("http://127.0.0.1:9093").unwrap(), "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(p("http://127.0.0.1:9093/").unwrap(), "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(p("http://h:9093/prefix").unwrap(), "http://h:9093/prefix/api/v2/alerts");
        assert_eq!(p("https://h/a//b/./c/../").unwrap(), "https://h/a/b/api/v2/alerts");
        assert_eq!(p(" http://h/p?tenant=a ").unwrap(), "http://h/p/api/v2/alerts?tenant=a");
        assert_eq!(p("http://[::1]:9093/x").unwrap(), "http://[::1]:9093/x/api/v2/alerts");
    }

    #[test]
    fn bad_urls_are_named_without_their_secrets() {
        for (url, reason) in [
            ("127.0.0.1:9093", "scheme"),
            ("ftp://h/", "scheme \"ftp\""),
            ("http://", ""),
            ("http://u:hunter2@h/p#frag", "fragment"),
            ("not a url", ""),
        ] {
            let err = Endpoint::parse(url, None).unwrap_err().to_string();
            assert!(err.contains(reason), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = Endpoint::parse("http://u:hunter2@h/p#frag", None).unwrap_err().to_string();
        assert!(err.contains("http://<redacted>@h/p#frag"), "{err}");
    }

    #[test]
    fn url_credentials_become_basic_auth_and_win_over_options() {
        let opt = AlertmanagerAuth::Bearer("tok".into());
        let e = Endpoint::parse("http://us%40er:p%3Ass@h:1/pre?api_key=k", Some(&opt)).unwrap();
        assert_eq!(e.post_url, "http://h:1/pre/api/v2/alerts?api_key=k");
        assert_eq!(e.name, "http://h:1/pre/api/v2/alerts?api_key=<redacted>");
        // base64("us@er:p:ss")
        assert_eq!(e.authorization.as_deref(), Some("Basic dXNAZXI6cDpzcw=="));
        assert!(!format!("{e:?}").contains("dXNA"));
        let e = Endpoint::parse("http://h:1", Some(&opt)).unwrap();
        assert_eq!(e.authorization.as_deref(), Some("Bearer tok"));
        let basic = AlertmanagerAuth::Basic { username: "u".into(), password: "p".into() };
        assert_eq!(Endpoint::parse("http://h", Some(&basic)).unwrap().authorization.as_deref(), Some("Basic dTpw"));
        let bad = AlertmanagerAuth::Bearer("a\nb".into());
        assert!(Endpoint::parse("http://h", Some(&bad)).unwrap_err().to_string().contains("not allowed"));
    }
}
