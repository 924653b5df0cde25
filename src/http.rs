//! The one HTTP client, and the one place that decides what is worth retrying.
//!
//! reqwest sets no timeouts by default; an API that stops answering would hang a poll forever, so
//! both the connect and the whole-request timeout are always set. TLS is rustls with the platform's
//! roots (no OpenSSL); plain `http://` is refused by the config except to loopback.
//!
//! Every server is untrusted input. Entra and Defender never redirect, so redirects are never
//! followed (a followed 307 would re-post the client secret to whatever host `Location` names, and
//! a followed 302 would store a foreign host's answer as alerts): a 3xx is an error that says
//! where it pointed. Bodies are read in chunks up to a cap ([`MAX_PAGE_BYTES`],
//! [`MAX_TOKEN_BYTES`], [`MAX_ERROR_BYTES`]), never whole. Every duration a server sets is
//! clamped ([`MAX_RETRY_AFTER`]), so no arithmetic on it can overflow.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::HttpConfig;

/// The User-Agent Microsoft asks integrators to send (`MdatpPartner-{Company}-{Product}/{Version}`).
pub const USER_AGENT: &str = concat!(
    "MdatpPartner-mdealerts-mde-alerts/",
    env!("CARGO_PKG_VERSION")
);

/// Builds the shared client: timeouts always; the configured proxy (its credentials sent as
/// `Proxy-Authorization`, never logged) or else the standard `HTTPS_PROXY` / `HTTP_PROXY` /
/// `NO_PROXY` variables; and the extra CA from `ca_file`, merged with the system's roots.
/// Certificate verification cannot be turned off: there is deliberately no setting for it.
pub fn client(request_timeout: Duration, net: &HttpConfig) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(15))
        .timeout(request_timeout)
        // Entra and Defender do not redirect; a redirect is answered by [`redirect_target`].
        .redirect(reqwest::redirect::Policy::none());
    if let Some(p) = &net.proxy {
        let mut proxy = reqwest::Proxy::all(p.url.as_str())
            .map_err(|e| format!("the proxy {} cannot be used: {e}", p.url))?
            .no_proxy(reqwest::NoProxy::from_env());
        if let Some(user) = &p.username {
            let pass = p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("");
            // A proxy or server that echoes `Proxy-Authorization` must not get it shown, in
            // any form (the header carries it base64-encoded).
            crate::redact::register_credential(user, pass);
            proxy = proxy.basic_auth(user, pass);
        }
        b = b.proxy(proxy);
    } else {
        register_env_proxy_credentials(|k| std::env::var(k).ok());
    }
    if let Some(ca) = &net.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{} is not a PEM bundle: {e}", ca.display()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| error_chain(&e))
}

/// The variables reqwest takes a proxy from when none is configured, in its order of preference.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Registers the credentials of a proxy given in the environment (`HTTPS_PROXY=http://user:pass@…`):
/// reqwest sends them as `Proxy-Authorization` just as it does a configured proxy's, so they are
/// secrets in the same forms.
fn register_env_proxy_credentials(var: impl Fn(&str) -> Option<String>) {
    for name in PROXY_VARIABLES {
        let Some(value) = var(name) else { continue };
        // reqwest reads a proxy without a scheme as `http://`.
        let parsed =
            url::Url::parse(&value).or_else(|_| url::Url::parse(&format!("http://{value}")));
        let Ok(u) = parsed else { continue };
        if u.username().is_empty() && u.password().is_none() {
            continue;
        }
        let decode = |s: &str| percent_decode(s);
        crate::redact::register_credential(
            &decode(u.username()),
            &decode(u.password().unwrap_or_default()),
        );
    }
}

/// `%XX` sequences decoded (what a URL's user info means), invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the caller should do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after a backoff (or after the server's `Retry-After`).
    Later,
    /// Renew the token once, then try again.
    RenewToken,
    /// Try again once, then give up: an HTML page where JSON belongs is a gateway's passing
    /// hiccup or a proxy's login page, and only the first goes away when asked again.
    Once,
    /// Do not retry: the request itself is wrong or not allowed.
    Never,
}

/// Classifies an HTTP status. Kept tiny and table-tested: every retry decision in the crate comes
/// from here or [`classify_transport`].
pub fn classify_status(status: u16) -> Retry {
    match status {
        401 => Retry::RenewToken,
        408 | 429 | 500..=599 => Retry::Later,
        _ => Retry::Never,
    }
}

/// Classifies a transport-level failure (no usable response).
pub fn classify_transport(e: &reqwest::Error) -> Retry {
    if e.is_builder() || e.is_redirect() {
        Retry::Never
    } else {
        // connect errors, timeouts, resets, bodies cut short
        Retry::Later
    }
}

/// The longest `Retry-After` believed: a day. A longer one (or `18446744073709551615`) is a broken
/// or hostile server; a day already passes any poll's deadline, which ends the poll as partial.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses `Retry-After` given in seconds (what Defender sends) or as an HTTP date, clamped to
/// [`MAX_RETRY_AFTER`] (a number of seconds too large for any integer type included).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The server's clock from its `Date` header (an HTTP date, one-second precision), if it sent a
/// readable one.
pub fn server_date(headers: &reqwest::header::HeaderMap) -> Option<crate::alert::time::ApiTime> {
    let v = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    Some(crate::alert::time::ApiTime::from_chrono(
        when.with_timezone(&chrono::Utc),
    ))
}

/// `now + d`, or `None` when that instant cannot be represented (a server-chosen `d`): callers
/// treat `None` as "later than any deadline", never as a panic.
pub fn later(now: tokio::time::Instant, d: Duration) -> Option<tokio::time::Instant> {
    now.checked_add(d)
}

/// The most a page of alerts may weigh: 512 MiB. `$top` is at most 10,000 and a large alert with
/// `$expand=evidence` is tens of KB, so a real page fits with room to spare; anything larger is a
/// broken or hostile server, and reading it whole would exhaust memory.
pub const MAX_PAGE_BYTES: usize = 512 << 20;
/// The most a token response may weigh: 256 KiB (a token with many group claims is ~10 KB).
pub const MAX_TOKEN_BYTES: usize = 256 << 10;
/// The most of an error answer that is read (only a snippet of it is ever shown): 64 KiB.
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// `bytes` for people: `512 MiB`, `256 KiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is (or says it is) larger than the cap.
    #[error("the answer is larger than the {} limit{}; reading stopped there", size(*limit as u64), announced.map(|n| format!(" (it announced {n} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The cap.
        limit: usize,
        /// The `Content-Length`, when that alone was too large.
        announced: Option<u64>,
    },
    /// The connection failed while reading.
    #[error("the answer was cut short: {0}")]
    Cut(String),
}

/// Reads a body in chunks, failing as soon as it passes `limit` (first by its `Content-Length`,
/// then by what actually arrives), so that an endless or huge answer costs at most `limit` bytes.
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if let Some(n) = resp.content_length()
        && n > limit as u64
    {
        return Err(BodyError::TooLarge {
            limit,
            announced: Some(n),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Cut(error_chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge {
                limit,
                announced: None,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads at most [`MAX_ERROR_BYTES`] of an error answer: only its start is ever shown, so the rest
/// is dropped unread (and a failure to read is no more news than the error status itself).
pub async fn read_error_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BYTES {
            break;
        }
    }
    body
}

/// Where a redirect answer pointed (its `Location`, cleaned for display), or `None` when the
/// answer is not a redirect. Redirects are never followed; the caller turns this into an error.
pub fn redirect_target(resp: &reqwest::Response) -> Option<crate::redact::ServerText> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "(no Location header)".to_owned());
    Some(crate::redact::ServerText::new(&location))
}

/// A body that is not what was expected, described for a person: its content type, a short clean
/// (redacted, control-character-free) snippet, and, for an HTML page, the likely cause: a proxy or
/// captive portal answered instead of the real server.
pub fn describe_body(content_type: Option<&str>, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let snippet = crate::redact::ServerText::new(&text);
    let ct = content_type.unwrap_or("no content type");
    let mut s = if snippet.is_empty() {
        format!("{ct}, empty")
    } else {
        format!("{ct}, starting \"{snippet}\"")
    };
    if is_html(content_type, body) {
        s.push_str(
            "; an HTML page usually means a proxy or captive portal answered instead (a login or \
             block page): check [http] proxy or HTTPS_PROXY, and that the URL is the service's",
        );
    }
    s
}

/// Whether an answer is an HTML page (by its content type, or by how it starts).
pub fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html"))
        || body.trim_ascii_start().starts_with(b"<")
}

/// The `Content-Type` of an answer, if readable.
pub fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| crate::redact::ServerText::with_limit(s, 80).to_string())
}

/// Appends `path` to a base URL that may itself carry a path (private endpoints, simulators).
pub fn join_path(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    u.set_path(&joined);
    u
}

/// The error and its causes on one line (reqwest hides the useful part in `source()`). A cause
/// whose text is already there is left out: many errors repeat their source in their own message
/// (`… (os error 2): No such file or directory (os error 2)`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// The start of a response body, for error messages: redacted, one line, cut short.
pub fn snippet(body: &str) -> String {
    crate::redact::ServerText::new(body).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy given in the environment sends its credential the same way a configured one
    /// does: it is registered in every form, decoded from the URL first.
    #[test]
    fn an_environment_proxys_credential_is_registered() {
        use base64::Engine;
        register_env_proxy_credentials(|k| {
            (k == "https_proxy").then(|| "http://env-user:env%2Fpa55-Qz8@proxy:3128".to_owned())
        });
        let basic = base64::engine::general_purpose::STANDARD.encode("env-user:env/pa55-Qz8");
        let echoed = format!("echo Basic {basic} and env/pa55-Qz8");
        let out = crate::redact::scrub_known(&echoed);
        assert!(
            !out.contains(&basic) && !out.contains("env/pa55-Qz8"),
            "{out}"
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn status_table() {
        let table = [
            (400, Retry::Never),
            (401, Retry::RenewToken),
            (403, Retry::Never),
            (404, Retry::Never),
            (408, Retry::Later),
            (429, Retry::Later),
            (500, Retry::Later),
            (502, Retry::Later),
            (503, Retry::Later),
            (504, Retry::Later),
        ];
        for (status, want) in table {
            assert_eq!(classify_status(status), want, "{status}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn server_chosen_waits_are_clamped() {
        let mut h = reqwest::header::HeaderMap::new();
        for v in [
            "18446744073709551615",
            "99999999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "{v}");
        }
        assert!(later(tokio::time::Instant::now(), Duration::MAX).is_none());
    }

    #[test]
    fn sizes_and_bodies_are_described() {
        assert_eq!(size(MAX_PAGE_BYTES as u64), "512 MiB");
        assert_eq!(size(MAX_TOKEN_BYTES as u64), "256 KiB");
        assert_eq!(size(100), "100 bytes");
        let d = describe_body(
            Some("text/html; charset=utf-8"),
            b"<html>\n<title>Proxy login</title>\x07</html>",
        );
        assert!(d.contains("text/html"), "{d}");
        assert!(d.contains("<title>Proxy login</title>"), "{d}");
        assert!(!d.contains('\n') && !d.contains('\x07'), "{d}");
        assert!(d.contains("captive portal"), "{d}");
        assert!(!describe_body(Some("application/json"), b"{}").contains("portal"));
    }
}
