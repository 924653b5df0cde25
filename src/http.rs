//! The one HTTP client, and the one place that decides what is worth retrying.
//!
//! reqwest sets no timeouts by default; an API that stops answering would hang a poll forever, so
//! both the connect and the whole-request timeout are always set. TLS is rustls with the platform's
//! roots (no OpenSSL); plain `http://` is refused by the config except to loopback.

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
        .timeout(request_timeout);
    if let Some(p) = &net.proxy {
        let mut proxy = reqwest::Proxy::all(p.url.as_str())
            .map_err(|e| format!("the proxy {} cannot be used: {e}", p.url))?
            .no_proxy(reqwest::NoProxy::from_env());
        if let Some(user) = &p.username {
            let pass = p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("");
            proxy = proxy.basic_auth(user, pass);
        }
        b = b.proxy(proxy);
    }
    if let Some(ca) = &net.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{} is not a PEM bundle: {e}", ca.display()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| crate::auth::error_chain(&e))
}

/// What the caller should do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after a backoff (or after the server's `Retry-After`).
    Later,
    /// Renew the token once, then try again.
    RenewToken,
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

/// Parses `Retry-After` given in seconds (what Defender sends) or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
