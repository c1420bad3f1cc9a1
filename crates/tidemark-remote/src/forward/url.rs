//! What a forward URL may carry that must never be printed: credentials
//! in its userinfo (`https://user:secret@host/…`) and tokens in its query
//! (`?api_key=…`). [`split_userinfo`] moves the former into
//! [`Auth::Basic`](super::Auth); [`redact_url`] is what logs, `Debug`
//! output and error messages show.

/// Query parameters whose values are treated as secrets (matched as
/// case-insensitive substrings of the parameter name).
const SECRET_PARAMS: [&str; 8] = ["token", "key", "secret", "pass", "auth", "sig", "credential", "session"];

/// `url` with its userinfo removed, and the user name and password it held
/// (percent-decoded). `None` when there is no userinfo.
pub fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let clean = format!("{}{}{}", &url[..scheme_end + 3], &authority[at + 1..], &rest[authority_end..]);
    (clean, Some((percent_decode(user), percent_decode(pass))))
}

/// `url` safe to print: userinfo replaced by `<redacted>@`, and the values
/// of query parameters whose names look like secrets by `<redacted>`.
///
/// ```
/// use tidemark_remote::forward::redact_url;
/// assert_eq!(
///     redact_url("https://bob:hunter2@mimir:9009/api/v1/push?api_key=abc&tenant=a"),
///     "https://<redacted>@mimir:9009/api/v1/push?api_key=<redacted>&tenant=a"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (clean, userinfo) = split_userinfo(url);
    let mut out = match (userinfo, clean.find("://")) {
        (Some(_), Some(i)) => format!("{}<redacted>@{}", &clean[..i + 3], &clean[i + 3..]),
        _ => clean,
    };
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let (query, fragment) = match query.find('#') {
            Some(h) => query.split_at(h),
            None => (query, ""),
        };
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=<redacted>"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}{fragment}", redacted.join("&"));
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| n.contains(s))
}

/// Whether a request header carries credentials (its value is never printed).
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization" || n == "proxy-authorization" || n == "cookie" || SECRET_PARAMS.iter().any(|s| n.contains(s))
}

/// Request headers as they may be printed: the value of every header that
/// [`is_secret_header`] names is replaced by `<redacted>`.
pub fn redacted_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    headers.into_iter().map(|(k, v)| (k, if is_secret_header(k) { "<redacted>" } else { v })).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_off_and_decoded() {
        assert_eq!(
            split_userinfo("http://us%40er:p%3Ass@127.0.0.1:9/api/v1/write"),
            ("http://127.0.0.1:9/api/v1/write".to_owned(), Some(("us@er".to_owned(), "p:ss".to_owned())))
        );
        assert_eq!(split_userinfo("http://h/x?u=a@b"), ("http://h/x?u=a@b".to_owned(), None));
        assert_eq!(split_userinfo("https://tok@h"), ("https://h".to_owned(), Some(("tok".to_owned(), String::new()))));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%é"), "%é");
    }

    #[test]
    fn redaction_hides_userinfo_and_secret_query_values() {
        assert_eq!(redact_url("http://user:secret@h:1/p"), "http://<redacted>@h:1/p");
        assert_eq!(redact_url("http://h/p?access_token=x&b=2#f"), "http://h/p?access_token=<redacted>&b=2#f");
        assert_eq!(redact_url("http://h/p"), "http://h/p");
        assert!(
            is_secret_header("Authorization") && is_secret_header("X-Api-Key") && !is_secret_header("X-Scope-OrgID")
        );
    }
}
