//! The HTTP side of the forwarder: one POST per batch with the headers the
//! remote write specs require, and the classification of the answer into
//! "done", "retry later" and "give up".

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{redact_url, Auth, ForwardError, ForwarderOptions, Protocol, TlsOptions};

/// Longest response body kept for the log of a failed request.
const MAX_ERROR_BODY: u64 = 1024;
/// A `Retry-After` longer than this is capped: an endpoint asking for an
/// hour of silence would otherwise freeze the forwarder's shutdown logic.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How one request ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// 2xx: the endpoint has the data. A 2.0 receiver says how many
    /// samples and native histograms it wrote
    /// (`X-Prometheus-Remote-Write-Samples-Written`, `-Histograms-Written`).
    Sent {
        /// The samples header's value, if the endpoint sent it.
        samples_written: Option<u64>,
        /// The histograms header's value, if the endpoint sent it.
        histograms_written: Option<u64>,
    },
    /// 5xx, 429 or a network error: send the same batch again later.
    Retry {
        /// Short reason for the counters (`http_503`, `network`, `timeout`).
        reason: String,
        /// What the endpoint or the transport said.
        detail: String,
        /// The endpoint's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Any other status: retrying cannot help; the batch is dropped.
    Drop {
        /// Short reason for the counters (`http_400`).
        reason: String,
        /// Status and the start of the response body.
        detail: String,
    },
}

/// Sends request bodies to one endpoint.
pub(crate) struct Client {
    agent: ureq::Agent,
    url: String,
    protocol: Protocol,
    headers: Vec<(String, String)>,
}

impl Client {
    pub(crate) fn new(opts: &ForwarderOptions) -> Result<Client, ForwardError> {
        let uri: ureq::http::Uri = opts
            .url
            .parse()
            .map_err(|e| ForwardError::InvalidOptions(format!("url {}: {e}", redact_url(&opts.url))))?;
        if !matches!(uri.scheme_str(), Some("http") | Some("https")) || uri.host().is_none() {
            return Err(ForwardError::InvalidOptions(format!(
                "url {} must be http:// or https:// with a host",
                redact_url(&opts.url)
            )));
        }
        let mut headers = opts.headers.clone();
        match &opts.auth {
            None => {}
            Some(Auth::Basic { username, password }) => headers.push((
                "Authorization".into(),
                format!("Basic {}", base64(format!("{username}:{password}").as_bytes())),
            )),
            Some(Auth::Bearer(token)) => headers.push(("Authorization".into(), format!("Bearer {token}"))),
        }
        for (k, v) in &headers {
            ureq::http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ForwardError::InvalidOptions(format!("invalid header name {k:?}")))?;
            ureq::http::HeaderValue::from_str(v)
                .map_err(|_| ForwardError::InvalidOptions(format!("invalid value for header {k:?}")))?;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls_config(&opts.tls)?)
            .timeout_global(Some(opts.timeout))
            // Statuses are classified here, not turned into errors.
            .http_status_as_error(false)
            .user_agent(format!("tidemark/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client { agent, url: opts.url.clone(), protocol: opts.protocol, headers })
    }

    /// POSTs one compressed body.
    pub(crate) fn send(&self, body: &[u8]) -> Outcome {
        let (content_type, version) = match self.protocol {
            Protocol::V1 => ("application/x-protobuf", "0.1.0"),
            Protocol::V2 => ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0"),
        };
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", content_type)
            .header("X-Prometheus-Remote-Write-Version", version);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                let reason = if matches!(e, ureq::Error::Timeout(_)) { "timeout" } else { "network" };
                return Outcome::Retry { reason: reason.into(), detail: e.to_string(), retry_after: None };
            }
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            let count = |name: &str| -> Option<u64> {
                resp.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
            };
            let samples_written = count("x-prometheus-remote-write-samples-written");
            let histograms_written = count("x-prometheus-remote-write-histograms-written");
            // Drain a little so the connection can be reused; errors here
            // do not change that the endpoint accepted the data.
            let _ = resp.body_mut().as_reader().take(MAX_ERROR_BODY).read_to_end(&mut Vec::new());
            return Outcome::Sent { samples_written, histograms_written };
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut text = Vec::new();
        let _ = resp.body_mut().as_reader().take(MAX_ERROR_BODY).read_to_end(&mut text);
        let detail = format!("HTTP {status}: {}", String::from_utf8_lossy(&text).trim());
        let reason = format!("http_{status}");
        if status >= 500 || status == 429 {
            Outcome::Retry { reason, detail, retry_after }
        } else {
            Outcome::Drop { reason, detail }
        }
    }
}

/// ureq's TLS settings from ours: the CA file replaces the web PKI roots; a
/// client certificate needs both its chain and its key.
fn tls_config(t: &TlsOptions) -> Result<ureq::tls::TlsConfig, ForwardError> {
    let read = |what: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ForwardError::InvalidOptions(format!("tls {what} {}: {e}", p.display())))
    };
    let pem_certs = |what: &str, p: &std::path::Path| -> Result<Vec<ureq::tls::Certificate<'static>>, ForwardError> {
        let bytes = read(what, p)?;
        let mut out = Vec::new();
        for item in ureq::tls::parse_pem(&bytes) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => out.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(ForwardError::InvalidOptions(format!("tls {what} {}: {e}", p.display())));
                }
            }
        }
        if out.is_empty() {
            return Err(ForwardError::InvalidOptions(format!("tls {what} {}: no CERTIFICATE found", p.display())));
        }
        Ok(out)
    };
    let mut b = ureq::tls::TlsConfig::builder().disable_verification(t.insecure_skip_verify);
    if let Some(ca) = &t.ca_file {
        b = b.root_certs(ureq::tls::RootCerts::new_with_certs(&pem_certs("ca_file", ca)?));
    }
    match (&t.cert_file, &t.key_file) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let chain = pem_certs("cert_file", cert)?;
            let key = ureq::tls::PrivateKey::from_pem(&read("key_file", key)?)
                .map_err(|e| ForwardError::InvalidOptions(format!("tls key_file {}: {e}", key.display())))?;
            b = b.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        _ => return Err(ForwardError::InvalidOptions("tls cert_file and key_file must be given together".into())),
    }
    Ok(b.build())
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
/// capped at [`MAX_RETRY_AFTER`]. `None` if unparsable.
pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = parse_http_date(v)?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
        Duration::from_secs(at.saturating_sub(now).max(0) as u64)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<i64> {
    let mut it = s.split_ascii_whitespace();
    let _weekday = it.next()?;
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:47 GMT", now), None);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
