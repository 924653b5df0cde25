//! The one HTTP client, and the one place that decides what is worth retrying.
//!
//! reqwest sets no timeouts by default; an API that stops answering would hang a poll forever, so
//! both the connect and the whole-request timeout are always set. TLS is rustls with the platform's
//! roots (no OpenSSL); plain `http://` is refused by the config except to loopback.

use std::time::Duration;

/// The User-Agent Microsoft asks integrators to send (`MdatpPartner-{Company}-{Product}/{Version}`).
pub const USER_AGENT: &str = concat!(
    "MdatpPartner-mdealerts-mde-alerts/",
    env!("CARGO_PKG_VERSION")
);

/// Builds the shared client.
pub fn client(request_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(15))
        .timeout(request_timeout)
        .https_only(false) // the config already refused non-loopback http://
        .build()
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
