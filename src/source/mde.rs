//! Defender for Endpoint's `GET /api/alerts`: its query and what its errors mean. The HTTP
//! machinery is [`super::client`]'s.
//!
//! Times go out as unquoted literals with seven fractional digits, so that the filter's instant is
//! exactly the stored one. `@odata.nextLink` is not followed (Microsoft does not document it for
//! alerts, and reports show it looping), but it is heeded: a page that carries one is never taken
//! for the last page.

use super::PageRequest;

/// The API's name in messages.
pub const API: &str = "Defender for Endpoint";
/// The alerts path under the API host.
pub const PATH: &str = "api/alerts";

/// The query string for a request.
pub fn query(r: &PageRequest, expand_evidence: bool) -> Vec<(&'static str, String)> {
    let filter = r.time_filter("lastUpdateTime", "alertCreationTime");
    let mut q = vec![("$filter", filter)];
    if r.ordered {
        q.push(("$orderby", "lastUpdateTime asc".to_owned()));
    }
    q.push(("$top", r.top.to_string()));
    if r.skip > 0 {
        q.push(("$skip", r.skip.to_string()));
    }
    if expand_evidence {
        q.push(("$expand", "evidence".to_owned()));
    }
    q
}

/// What to do about a refusal, by HTTP status.
pub fn hint(status: u16) -> String {
    hint_on(status, chrono::Utc::now().date_naive())
}

/// [`hint`] as of `today`: from the switch-off date on, a 403, 404 or 410 is most likely the MDE
/// API being gone, and says so first.
fn hint_on(status: u16, today: chrono::NaiveDate) -> String {
    let off = crate::config::MDE_SWITCH_OFF;
    let switched_off = chrono::NaiveDate::parse_from_str(off, "%Y-%m-%d").is_ok_and(|d| today >= d);
    match status {
        403 | 404 | 410 if switched_off => format!(" — Microsoft switched the Defender for Endpoint API off on {off} (MC1220762): it no longer serves alerts. Fix: grant the app Microsoft Graph's SecurityAlert.Read.All and set source = \"graph\" for this tenant (see the README's migration section)"),
        401 => " — the token was rejected even after renewal; check the app's permissions and that tenant_id is right".to_owned(),
        403 => " — the app lacks the WindowsDefenderATP application permission Alert.Read.All (or Alert.ReadWrite.All) with admin consent, or the token's audience is not https://api.securitycenter.microsoft.com".to_owned(),
        404 | 410 => format!(" — check api_url: the alerts API lives at /api/alerts on the Defender API host (Microsoft switches this API off on {off}; see the README's migration section)"),
        429 => " — the tenant's API quota (100 calls/min, 1,500/h per app) is spent; another tool may share the app".to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::time::ApiTime;
    use crate::source::{Bound, Created};
    use std::time::Duration;

    #[test]
    fn query_uses_seven_digit_literals_and_bounds() {
        let t = ApiTime::parse("2024-05-01T10:00:00.5Z").unwrap();
        let q = query(
            &PageRequest {
                bound: Bound::AtOrAfter(t),
                before: Some(t.plus(Duration::from_secs(1))),
                created: None,
                ordered: true,
                top: 500,
                skip: 0,
            },
            true,
        );
        assert_eq!(
            q,
            vec![
                ("$filter", "lastUpdateTime ge 2024-05-01T10:00:00.5000000Z and lastUpdateTime lt 2024-05-01T10:00:01.5000000Z".to_owned()),
                ("$orderby", "lastUpdateTime asc".to_owned()),
                ("$top", "500".to_owned()),
                ("$expand", "evidence".to_owned()),
            ]
        );
        let q = query(
            &PageRequest {
                bound: Bound::Exactly(t),
                before: None,
                created: Some(Created::Missing),
                ordered: false,
                top: 10,
                skip: 20,
            },
            true,
        );
        assert_eq!(
            q[0].1,
            "lastUpdateTime eq 2024-05-01T10:00:00.5000000Z and alertCreationTime eq null"
        );
        assert!(!q.iter().any(|(k, _)| *k == "$orderby"));
        assert!(q.contains(&("$skip", "20".to_owned())));
    }

    #[test]
    fn after_the_switch_off_a_refusal_says_the_api_is_gone() {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        for status in [403, 404, 410] {
            let before = hint_on(status, day("2027-01-31"));
            let after = hint_on(status, day("2027-02-01"));
            assert!(
                !before.contains("switched the Defender for Endpoint API off"),
                "{before}"
            );
            assert!(
                after.contains("switched the Defender for Endpoint API off on 2027-02-01"),
                "{after}"
            );
            assert!(after.contains("source = \"graph\""), "{after}");
        }
        assert!(hint_on(404, day("2026-12-01")).contains("2027-02-01"));
        assert!(!hint_on(429, day("2027-03-01")).contains("switched"));
    }
}
