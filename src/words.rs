//! How user text says counts, durations and instants: "1 API call", "400 days",
//! "2026-12-06 00:01:01 UTC". One place, so that every command and message agrees, and none
//! prints `1 API calls`, `1year 1month 4days 7h 26m 24s` or nanoseconds a person cannot use.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `n` and the noun agreeing with it: `1 alert`, `2 alerts`, `0 alerts`.
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

/// A duration as people say it, to at most two units and never in months or years (whose
/// length varies): `45 seconds`, `12 minutes`, `3 hours 5 minutes`, `1 day 4 hours`,
/// `400 days`. Past a week only days are said: the hours no longer matter to the reader.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    let two = |a: String, b: u64, one: &str, many: &str| {
        if b == 0 {
            a
        } else {
            format!("{a} {}", count(b, one, many))
        }
    };
    if days >= 7 {
        count(days, "day", "days")
    } else if days > 0 {
        two(count(days, "day", "days"), hours, "hour", "hours")
    } else if hours > 0 {
        two(count(hours, "hour", "hours"), minutes, "minute", "minutes")
    } else if minutes > 0 {
        count(minutes, "minute", "minutes")
    } else {
        count(s, "second", "seconds")
    }
}

/// An instant to the second, in UTC, said so: `2026-12-06 00:01:01 UTC`.
fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An RFC 3339 instant as `instant` says it; text that is not one is returned as it is.
pub fn instant_text(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| instant(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(1u64, "API call", "API calls"), "1 API call");
        assert_eq!(count(0u64, "API call", "API calls"), "0 API calls");
        assert_eq!(count(2u32, "alert", "alerts"), "2 alerts");
    }

    #[test]
    fn durations_read_as_words_not_as_humantime() {
        let d = |s: u64| duration(Duration::from_secs(s));
        // What humantime printed as "1year 1month 4days 7h 26m 24s".
        assert_eq!(d(400 * 86_400 + 7 * 3_600 + 26 * 60 + 24), "400 days");
        assert_eq!(d(30 * 86_400), "30 days");
        assert_eq!(d(86_400 + 4 * 3_600 + 59), "1 day 4 hours");
        assert_eq!(d(2 * 86_400), "2 days");
        assert_eq!(d(3 * 3_600 + 60), "3 hours 1 minute");
        assert_eq!(d(3_600), "1 hour");
        assert_eq!(d(12 * 60 + 30), "12 minutes");
        assert_eq!(d(1), "1 second");
        assert_eq!(d(0), "0 seconds");
    }

    #[test]
    fn instants_are_said_to_the_second_in_utc() {
        assert_eq!(
            instant_text("2026-12-06T00:01:01.824909848+00:00"),
            "2026-12-06 00:01:01 UTC"
        );
        assert_eq!(
            instant_text("2026-12-06T01:01:01+01:00"),
            "2026-12-06 00:01:01 UTC"
        );
        assert_eq!(instant_text("soon"), "soon");
    }
}
