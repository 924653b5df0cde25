//! Instants as 100 ns ticks since the Unix epoch, and Defender's clock and text form.
//!
//! Ticks are Defender's own precision and the unit of `mde_alerts::alert::time::ApiTime`, so the tests
//! compare the simulator's truth with the store without loss. This crate cannot use `ApiTime`
//! itself (mde-alerts depends on it, not the other way round): chrono does the calendar here,
//! as it does behind `ApiTime`, and this module only converts.

use chrono::{DateTime, TimeZone, Utc};

/// Ticks in a second.
pub(crate) const TICKS_PER_SEC: i64 = 10_000_000;

/// Defender's clock ticks at 1/300 s (an SQL `datetime`): many alerts share a `lastUpdateTime`.
pub(crate) const SIM_TICK: i64 = 33_333;

/// Now, by this machine's clock, in ticks.
pub(crate) fn now_ticks() -> i64 {
    from_chrono(Utc::now())
}

/// Now, by Defender's coarser clock.
pub(crate) fn sim_now() -> i64 {
    let t = now_ticks();
    t - t.rem_euclid(SIM_TICK)
}

/// Parses an RFC 3339 timestamp (surrounding whitespace ignored), truncated to ticks: what
/// `ApiTime::parse` accepts, with the same result.
pub(crate) fn parse_ticks(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| from_chrono(t.with_timezone(&Utc)))
}

pub(crate) fn from_chrono(t: DateTime<Utc>) -> i64 {
    let sub = i64::from(t.timestamp_subsec_nanos()) / 100;
    t.timestamp()
        .saturating_mul(TICKS_PER_SEC)
        .saturating_add(sub)
}

/// Defender's text form: fractional digits vary, trailing zeros dropped.
pub(crate) fn defender_time(ticks: i64) -> String {
    let secs = ticks.div_euclid(TICKS_PER_SEC);
    let frac = ticks.rem_euclid(TICKS_PER_SEC);
    let t = Utc
        .timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let head = t.format("%Y-%m-%dT%H:%M:%S");
    let digits = format!("{frac:07}");
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        format!("{head}Z")
    } else {
        format!("{head}.{digits}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defender_time_drops_trailing_zeros() {
        let t = parse_ticks("2024-01-01T00:00:01.2500000Z").unwrap();
        assert_eq!(defender_time(t), "2024-01-01T00:00:01.25Z");
        let t = parse_ticks("2024-01-01T00:00:01Z").unwrap();
        assert_eq!(defender_time(t), "2024-01-01T00:00:01Z");
    }

    #[test]
    fn ticks_round_trip_through_defender_text() {
        for s in [
            "2021-01-26T20:33:57.7220239Z",
            "1969-12-31T23:59:59.9Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9999999Z",
        ] {
            let t = parse_ticks(s).unwrap();
            assert_eq!(parse_ticks(&defender_time(t)), Some(t), "{s}");
        }
        assert_eq!(parse_ticks(" 1970-01-01T00:00:00.0000001Z\n"), Some(1));
        assert_eq!(parse_ticks("yesterday"), None);
    }
}
