//! Content negotiation: which protocol version a request speaks, from its
//! `Content-Type` and `Content-Encoding` headers.
//!
//! - `application/x-protobuf` without a `proto` parameter, or with
//!   `proto=prometheus.WriteRequest`, is remote write 1.0;
//!   `proto=io.prometheus.write.v2.Request` is 2.0; anything else is 415.
//! - A missing `Content-Type` is taken as 1.0: early 1.0 senders omit it and
//!   Prometheus' receiver accepts them the same way.
//! - `Content-Encoding` must be `snappy`; a missing header is taken as
//!   snappy for the same reason. Anything else is 415.

use super::error::ReceiveError;

/// The media type both versions use.
pub const PROTOBUF_MEDIA_TYPE: &str = "application/x-protobuf";
/// The `proto` parameter naming the 1.0 message.
pub const PROTO_V1: &str = "prometheus.WriteRequest";
/// The `proto` parameter naming the 2.0 message.
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// A remote write protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Remote write 1.0: `prometheus.WriteRequest`.
    V1,
    /// Remote write 2.0: `io.prometheus.write.v2.Request`.
    V2,
}

impl Protocol {
    /// `"1.0"` or `"2.0"`, e.g. for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "1.0",
            Protocol::V2 => "2.0",
        }
    }

    /// The `Content-Type` a sender of this version uses.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::V1 => "application/x-protobuf;proto=prometheus.WriteRequest",
            Protocol::V2 => "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        }
    }
}

/// The protocol of a request, from its two headers.
pub fn negotiate(content_type: Option<&str>, content_encoding: Option<&str>) -> Result<Protocol, ReceiveError> {
    let protocol = match content_type {
        None => Protocol::V1,
        Some(ct) => parse_content_type(ct).ok_or_else(|| ReceiveError::UnsupportedContentType(ct.to_owned()))?,
    };
    if let Some(enc) = content_encoding {
        let enc_trimmed = enc.trim();
        if !(enc_trimmed.is_empty() || enc_trimmed.eq_ignore_ascii_case("snappy")) {
            return Err(ReceiveError::UnsupportedEncoding(enc.to_owned()));
        }
    }
    Ok(protocol)
}

/// `None` when the type is not one we accept.
fn parse_content_type(ct: &str) -> Option<Protocol> {
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    // An empty header value is as good as a missing one.
    if media.is_empty() && ct.trim().is_empty() {
        return Some(Protocol::V1);
    }
    if !media.eq_ignore_ascii_case(PROTOBUF_MEDIA_TYPE) {
        return None;
    }
    let mut protocol = Protocol::V1;
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        // RFC 9110 parameters are `name=value`; a bare token is malformed.
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        protocol = match value {
            PROTO_V1 => Protocol::V1,
            PROTO_V2 => Protocol::V2,
            _ => return None,
        };
    }
    Some(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ok = |ct: Option<&str>| negotiate(ct, Some("snappy")).ok();
        assert_eq!(ok(None), Some(Protocol::V1));
        assert_eq!(ok(Some("")), Some(Protocol::V1));
        assert_eq!(ok(Some("application/x-protobuf")), Some(Protocol::V1));
        assert_eq!(ok(Some("Application/X-Protobuf ; proto=prometheus.WriteRequest")), Some(Protocol::V1));
        assert_eq!(ok(Some("application/x-protobuf;proto=io.prometheus.write.v2.Request")), Some(Protocol::V2));
        assert_eq!(
            ok(Some("application/x-protobuf; charset=x; proto=\"io.prometheus.write.v2.Request\"")),
            Some(Protocol::V2)
        );
        assert_eq!(ok(Some("application/json")), None);
        assert_eq!(ok(Some("application/x-protobuf;proto=io.prometheus.write.v3.Request")), None);
        assert_eq!(ok(Some("application/x-protobuf;proto")), None);
        assert_eq!(Protocol::V2.content_type().parse::<String>().ok().and_then(|s| ok(Some(&s))), Some(Protocol::V2));
    }

    #[test]
    fn encodings() {
        let ct = Some("application/x-protobuf");
        assert!(negotiate(ct, None).is_ok());
        assert!(negotiate(ct, Some("SNAPPY")).is_ok());
        let e = negotiate(ct, Some("gzip")).unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.to_string().contains("gzip"), "{e}");
        assert_eq!(negotiate(Some("text/plain"), None).unwrap_err().status(), 415);
    }
}
