//! Cross-origin protection for the endpoints that change state (remote
//! write, the admin snapshot).
//!
//! A browser lets any web page send a "simple" cross-origin POST (a form
//! submission, or `fetch` with `mode: "no-cors"`) to a server on the
//! user's network; the page cannot read the answer, but the request has
//! its effect. Browsers mark such requests: `Sec-Fetch-Site` (all current
//! browsers) says whether the request comes from the same origin, and
//! `Origin` names the page's origin. A request is refused (403) when
//! `Sec-Fetch-Site` is `cross-site` or `same-site`, or when `Origin` is
//! present and its host and port differ from the `Host` the request was
//! sent to (or it is `null`, an opaque origin). Non-browser clients
//! (Prometheus, Alloy, curl) send neither header and are not affected.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::json;

/// Why a request looks cross-origin, or `None` if it does not.
pub(crate) fn cross_origin(headers: &HeaderMap, authority: Option<&str>) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        let site = site.trim().to_ascii_lowercase();
        if site == "cross-site" || site == "same-site" {
            return Some(format!("Sec-Fetch-Site is {site}"));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some("the Origin header is not valid text".into());
    };
    let origin = origin.trim();
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some(format!("Origin {origin:?} is not a same-origin page"));
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Some(format!("Origin {origin:?} is not a same-origin page")),
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).or(authority);
    let Some(host) = host else {
        return Some(format!("Origin {origin:?} cannot be compared: the request has no Host"));
    };
    let norm = |hp: &str| -> (String, String) {
        let hp = hp.trim().trim_end_matches('/').to_ascii_lowercase();
        // "[::1]:9201", "host:9201", "host"
        match hp.rfind(':') {
            Some(i) if !hp[i..].contains(']') => (hp[..i].to_owned(), hp[i + 1..].to_owned()),
            _ => (hp, default_port.to_owned()),
        }
    };
    if norm(rest) == norm(host) {
        None
    } else {
        Some(format!("Origin {origin} does not match Host {host}"))
    }
}

/// The 403 answer for a cross-origin request, in the API's JSON envelope.
pub(crate) fn forbidden(why: &str) -> Response {
    let mut body = String::from("{\"status\":\"error\",\"errorType\":\"forbidden\",\"error\":");
    json::string(
        &mut body,
        &format!("cross-origin request refused ({why}): this endpoint changes state and accepts no requests from web pages of other origins"),
    );
    body.push('}');
    let mut r = (StatusCode::FORBIDDEN, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `Some(403)` if the request is cross-origin.
pub(crate) fn check(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<Response> {
    cross_origin(headers, uri.authority().map(|a| a.as_str())).map(|why| forbidden(&why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn browsers_cross_site_requests_are_refused_and_others_pass() {
        let host = ("host", "127.0.0.1:9201");
        // Non-browser clients.
        assert_eq!(cross_origin(&h(&[host]), None), None);
        // Same origin.
        assert_eq!(cross_origin(&h(&[host, ("origin", "http://127.0.0.1:9201")]), None), None);
        assert_eq!(cross_origin(&h(&[("host", "example.com"), ("origin", "https://EXAMPLE.com")]), None), None);
        assert_eq!(cross_origin(&h(&[host, ("sec-fetch-site", "same-origin")]), None), None);
        assert_eq!(cross_origin(&h(&[host, ("sec-fetch-site", "none")]), None), None);
        // Cross origin.
        assert!(cross_origin(&h(&[host, ("origin", "http://evil.example")]), None).is_some());
        assert!(cross_origin(&h(&[host, ("origin", "http://127.0.0.1:9202")]), None).is_some());
        assert!(cross_origin(&h(&[host, ("origin", "null")]), None).is_some());
        assert!(cross_origin(&h(&[host, ("sec-fetch-site", "cross-site")]), None).is_some());
        assert!(cross_origin(&h(&[host, ("sec-fetch-site", "same-site")]), None).is_some());
        assert!(cross_origin(&h(&[("host", "example.com"), ("origin", "https://example.com:8443")]), None).is_some());
        // HTTP/2 carries the host in the URI's authority.
        assert_eq!(cross_origin(&h(&[("origin", "https://[::1]:9201")]), Some("[::1]:9201")), None);
    }
}
