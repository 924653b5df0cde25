//! Instants as Defender writes them.
//!
//! Defender's timestamps carry 0 to 7 fractional digits (`…57.7220239Z`, `…59.2Z`, `…11Z`) and many
//! alerts share one `lastUpdateTime`. Comparing the strings breaks across digit counts, so every
//! timestamp is parsed once at the edge into an [`ApiTime`]: 100-nanosecond ticks since the Unix
//! epoch, the API's own precision. Nothing past the edge compares timestamp strings.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// An instant at the API's precision: 100 ns ticks since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiTime(i64);

/// A timestamp that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 UTC timestamp (expected e.g. 2024-05-01T12:00:00.1234567Z)")]
pub struct BadTime {
    /// The text as found (cut to 64 characters).
    text: String,
}

const TICKS_PER_SEC: i64 = 10_000_000;

impl ApiTime {
    /// The instant from raw ticks (as stored in SQLite).
    pub const fn from_ticks(ticks: i64) -> Self {
        ApiTime(ticks)
    }

    /// Raw ticks, for storage and ordering in SQL.
    pub const fn ticks(self) -> i64 {
        self.0
    }

    /// Now, by this machine's clock.
    pub fn now() -> Self {
        Self::from_chrono(Utc::now())
    }

    /// Parses an RFC 3339 timestamp with any number of fractional digits (digits past the 7th are
    /// truncated, as the API never sends them).
    pub fn parse(text: &str) -> Result<Self, BadTime> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Self::from_chrono(t.with_timezone(&Utc)))
            .map_err(|_| BadTime {
                text: text.chars().take(64).collect(),
            })
    }

    /// Parses a timestamp as [`ApiTime::parse`] does, and also one written without an offset
    /// (`2026-12-01T13:40:41.610`, .NET's "unspecified kind"), taken as UTC: Defender's times are
    /// UTC, and an alert must not be dropped for a missing `Z`.
    pub(crate) fn parse_lenient(text: &str) -> Result<Self, BadTime> {
        Self::parse(text).or_else(|e| {
            let t = text.trim();
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
                .map(|n| Self::from_chrono(n.and_utc()))
                .ok_or(e)
        })
    }

    /// Converts from chrono, truncating to 100 ns.
    pub fn from_chrono(t: DateTime<Utc>) -> Self {
        let secs = t.timestamp();
        let sub = i64::from(t.timestamp_subsec_nanos()) / 100;
        ApiTime(secs.saturating_mul(TICKS_PER_SEC).saturating_add(sub))
    }

    /// Converts to chrono.
    pub fn to_chrono(self) -> DateTime<Utc> {
        let secs = self.0.div_euclid(TICKS_PER_SEC);
        let nanos = (self.0.rem_euclid(TICKS_PER_SEC) * 100) as u32;
        Utc.timestamp_opt(secs, nanos)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// This instant moved back by `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        ApiTime(self.0.saturating_sub(duration_ticks(d)))
    }

    /// This instant moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        ApiTime(self.0.saturating_add(duration_ticks(d)))
    }

    /// The canonical text: always seven fractional digits and `Z`, so that text order is time order.
    /// This is also the literal form used in OData filters.
    pub fn to_api_string(self) -> String {
        use chrono::{Datelike, Timelike};
        let t = self.to_chrono();
        let sub = self.0.rem_euclid(TICKS_PER_SEC);
        // Integer formatting, not chrono's `format`: a CSV export writes a timestamp per cell,
        // and parsing the strftime pattern each time was 6 % of the export. Years outside
        // 0..=9999 (never sent by the API) keep chrono's own spelling (`+10000`, `-0001`).
        if !(0..=9999).contains(&t.year()) {
            return format!("{}.{sub:07}Z", t.format("%Y-%m-%dT%H:%M:%S"));
        }
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{sub:07}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

fn duration_ticks(d: Duration) -> i64 {
    i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX)
}

impl fmt::Display for ApiTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_api_string())
    }
}

impl fmt::Debug for ApiTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTime({})", self.to_api_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical text is chrono's `%Y-%m-%dT%H:%M:%S` plus seven digits, also at the edges
    /// (the integer formatting replaced the strftime pattern for speed).
    #[test]
    fn canonical_text_matches_chrono() {
        for ticks in [
            0,
            1,
            9_999_999,
            17_330_000_000_000_000,
            -1,
            -621_355_968_000_000_000,
            2_534_023_007_999_999_999,
            2_534_023_008_000_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            let t = ApiTime::from_ticks(ticks);
            let want = format!(
                "{}.{:07}Z",
                t.to_chrono().format("%Y-%m-%dT%H:%M:%S"),
                ticks.rem_euclid(TICKS_PER_SEC)
            );
            assert_eq!(t.to_api_string(), want, "{ticks}");
        }
    }

    /// An alert whose `lastUpdateTime` lacks its `Z` (.NET's unspecified kind) is read as UTC:
    /// taken as invalid, it would be dropped while the cursor moved past it.
    #[test]
    fn a_timestamp_without_offset_is_read_as_utc() {
        let z = ApiTime::parse("2026-12-01T13:40:41.610Z").unwrap();
        assert_eq!(
            ApiTime::parse_lenient("2026-12-01T13:40:41.610").unwrap(),
            z
        );
        assert_eq!(
            ApiTime::parse_lenient("2026-12-01 13:40:41.610").unwrap(),
            z
        );
        assert!(ApiTime::parse_lenient("yesterday").is_err());
        assert!(
            ApiTime::parse("2026-12-01T13:40:41.610").is_err(),
            "strict stays strict"
        );
    }

    #[test]
    fn equal_instants_compare_equal_across_digit_counts() {
        let a = ApiTime::parse("2021-01-26T20:33:59.2Z").unwrap();
        let b = ApiTime::parse("2021-01-26T20:33:59.2000000Z").unwrap();
        let c = ApiTime::parse("2021-01-26T20:33:59.20Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        // String order would put "…59.2Z" after "…59.2000001Z"; instant order does not.
        let d = ApiTime::parse("2021-01-26T20:33:59.2000001Z").unwrap();
        assert!(a < d);
    }

    #[test]
    fn parses_zero_to_seven_digits_and_offsets() {
        for s in [
            "2023-04-25T22:52:11Z",
            "2020-07-20T10:53:50.19Z",
            "2023-04-26T15:20:10.6946Z",
            "2021-01-26T20:33:57.7220239Z",
            "2021-01-26T21:33:57.7220239+01:00",
        ] {
            ApiTime::parse(s).unwrap();
        }
        assert_eq!(
            ApiTime::parse("2021-01-26T21:33:57.7220239+01:00").unwrap(),
            ApiTime::parse("2021-01-26T20:33:57.7220239Z").unwrap()
        );
    }

    #[test]
    fn canonical_text_has_seven_digits_and_round_trips() {
        let t = ApiTime::parse("2021-01-26T20:33:59.2Z").unwrap();
        assert_eq!(t.to_api_string(), "2021-01-26T20:33:59.2000000Z");
        let t2 = ApiTime::parse("2023-04-25T22:52:11Z").unwrap();
        assert_eq!(t2.to_api_string(), "2023-04-25T22:52:11.0000000Z");
        assert_eq!(ApiTime::parse(&t.to_api_string()).unwrap(), t);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-01-01 00:00:00",
        ] {
            assert!(ApiTime::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = ApiTime::parse("2021-01-01T00:00:00Z").unwrap();
        assert_eq!(
            t.minus(Duration::from_secs(60)).to_api_string(),
            "2020-12-31T23:59:00.0000000Z"
        );
        assert_eq!(
            t.plus(Duration::from_secs(1)).ticks(),
            t.ticks() + 10_000_000
        );
    }
}
