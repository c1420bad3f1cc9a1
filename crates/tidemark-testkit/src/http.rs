//! A minimal blocking HTTP client for talking to peers on loopback.

use std::time::Duration;

use crate::KitError;

/// An HTTP answer of any status (4xx and 5xx are answers, not errors).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, as sent (the client asks for no compression).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A blocking HTTP client with a per-request timeout that keeps connections
/// alive between requests (one per thread is the cheap way to send in
/// parallel).
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    /// Sent with every request (`Authorization: Basic …`).
    authorization: Option<String>,
}

/// TLS settings of an [`Http`] client (PEM bytes).
#[derive(Debug, Clone, Default)]
pub struct TlsClient {
    /// CA certificates to trust instead of the web PKI roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and private key to present.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

impl Http {
    /// A client whose every request (connect, send, receive) must finish
    /// within `timeout`.
    pub fn new(timeout: Duration) -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Status codes are data here: tests assert on 4xx answers.
            .http_status_as_error(false)
            // On loopback compression only costs CPU on both ends (and
            // would skew the benchmarks that measure a server's CPU).
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .build();
        Http { agent: ureq::Agent::new_with_config(config), authorization: None }
    }

    /// A client for an HTTPS server: trusts `tls.ca_pem` and presents
    /// `tls.client_cert`, if given. Malformed PEM is an error.
    pub fn with_tls(timeout: Duration, tls: &TlsClient) -> Result<Http, KitError> {
        let bad = |what: &str, e: String| KitError::Http { method: "TLS", url: what.to_string(), message: e };
        let certs = |pem: &[u8], what: &str| -> Result<Vec<ureq::tls::Certificate<'static>>, KitError> {
            let mut out = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(what, e.to_string()))? {
                    out.push(c);
                }
            }
            Ok(out)
        };
        let mut b = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &tls.ca_pem {
            b = b.root_certs(ureq::tls::RootCerts::new_with_certs(&certs(ca, "CA")?));
        }
        if let Some((chain, key)) = &tls.client_cert {
            let key = ureq::tls::PrivateKey::from_pem(key).map_err(|e| bad("client key", e.to_string()))?;
            b = b.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&certs(chain, "client cert")?, key)));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .tls_config(b.build())
            .build();
        Ok(Http { agent: ureq::Agent::new_with_config(config), authorization: None })
    }

    /// The same client, sending HTTP basic auth with every request.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Http {
        self.authorization = Some(format!("Basic {}", base64(format!("{user}:{password}").as_bytes())));
        self
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<HttpResponse, KitError> {
        let mut req = self.agent.get(url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a.as_str());
        }
        let resp = req.call().map_err(|e| http_err("GET", url, e))?;
        read("GET", url, resp)
    }

    /// `POST url` with `body` and extra `headers` (e.g. `Content-Type`,
    /// `Content-Encoding`).
    pub fn post(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<HttpResponse, KitError> {
        let mut req = self.agent.post(url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a.as_str());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send(body).map_err(|e| http_err("POST", url, e))?;
        read("POST", url, resp)
    }
}

fn http_err(method: &'static str, url: &str, e: ureq::Error) -> KitError {
    KitError::Http { method, url: url.to_string(), message: e.to_string() }
}

fn read(method: &'static str, url: &str, mut resp: ureq::http::Response<ureq::Body>) -> Result<HttpResponse, KitError> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    // ureq caps bodies at 10 MB by default; query answers can be larger.
    let body = resp.body_mut().with_config().limit(u64::MAX).read_to_vec().map_err(|e| http_err(method, url, e))?;
    Ok(HttpResponse { status, headers, body })
}

/// `GET url` with a 30 s timeout (a fresh connection each time).
pub fn get(url: &str) -> Result<HttpResponse, KitError> {
    Http::new(Duration::from_secs(30)).get(url)
}

/// `POST url` with a 30 s timeout (a fresh connection each time).
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<HttpResponse, KitError> {
    Http::new(Duration::from_secs(30)).post(url, headers, body)
}

/// Standard base64 with padding.
fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// Percent-encodes a query-string parameter (everything but unreserved
/// characters).
///
/// ```
/// assert_eq!(tidemark_testkit::url_encode("rate(x[5m])"), "rate%28x%5B5m%5D%29");
/// ```
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"foob"), "Zm9vYg==");
        assert_eq!(super::base64(b"alice:s3cret"), "YWxpY2U6czNjcmV0");
    }
}
