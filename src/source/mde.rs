//! Defender for Endpoint's `GET /api/alerts`: its query and what its errors mean. The HTTP
//! machinery is [`super::client`]'s.
//!
//! Times go out as unquoted literals with seven fractional digits, so that the filter's instant is
//! exactly the stored one. `@odata.nextLink` is not followed (Microsoft does not document it for
//! alerts, and reports show it looping), but it is heeded: a page that carries one is never taken
//! for the last page.

use super::{Advice, PageRequest};

/// The API's name in messages.
pub(crate) const API: &str = "Defender for Endpoint";
/// The alerts path under the API host.
pub(crate) const PATH: &str = "api/alerts";

/// The query string for a request.
pub(crate) fn query(r: &PageRequest, expand_evidence: bool) -> Vec<(&'static str, String)> {
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

/// What a refusal means and what to do about it, by HTTP status and the API's own words.
pub(crate) fn advice(status: u16, code: &str, message: &str) -> Advice {
    advice_on(status, code, message, chrono::Utc::now().date_naive())
}

/// The move to Graph, the fix once this API is retired (or past its announced date).
const READ_GRAPH: &str = "read Microsoft Graph instead: grant the app Microsoft Graph's SecurityAlert.Read.All (application permission, admin consent) and remove source = \"mde\" from the tenant's block (auto moves to Graph by itself)";

/// [`advice`] as of `today`. The API's retirement is named as the cause only when its answer says
/// so: a 403 after the date may still be a missing permission, and an admin sent to the wrong fix
/// loses a night. From the date on, a 403, 404 or 410 adds that Graph is the way on.
fn advice_on(status: u16, code: &str, message: &str, today: chrono::NaiveDate) -> Advice {
    let off = crate::config::MDE_SWITCH_OFF;
    if super::route::says_retired(code) || super::route::says_retired(message) {
        return Advice::new(
            format!(
                "the API says it is retired ({})",
                crate::config::mde_announcement()
            ),
            READ_GRAPH,
        );
    }
    let switched_off = crate::config::mde_switched_off(today);
    let (meaning, fix) = match status {
        401 => (
            "the token was rejected even after renewal",
            "check the app's permissions and that tenant_id is right",
        ),
        403 => (
            "the app lacks the WindowsDefenderATP application permission Alert.Read.All (or Alert.ReadWrite.All) with admin consent, or the token's audience is not https://api.securitycenter.microsoft.com",
            "grant the app WindowsDefenderATP's Alert.Read.All (application permission, admin consent), or move the tenant to Microsoft Graph",
        ),
        404 | 410 => (
            "the alerts API is not at this URL",
            "check api_url: the alerts API lives at /api/alerts on the Defender API host",
        ),
        429 => {
            return Advice::new(
                "the tenant's API quota (100 calls/min, 1,500/h per app) is spent",
                "give mde-alerts an app registration of its own if another tool shares this one",
            );
        }
        _ => return Advice::default(),
    };
    if switched_off {
        Advice::new(
            format!(
                "{meaning}; from {off} Microsoft's MC1220762 says this API no longer functions"
            ),
            READ_GRAPH,
        )
    } else {
        Advice::new(meaning, fix)
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

    /// The HTTP cause comes first, and the switch-off is named as the cause only when the API's
    /// answer says it is retired.
    #[test]
    fn a_refusal_blames_the_switch_off_only_when_the_answer_does() {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        for status in [403, 404, 410] {
            let before = advice_on(status, "Forbidden", "no", day("2027-01-31"));
            let after = advice_on(status, "Forbidden", "no", day("2027-02-01"));
            let (before, after) = (before.meaning.unwrap(), after);
            let (meaning, fix) = (after.meaning.unwrap(), after.fix.unwrap());
            assert!(!before.contains("MC1220762"), "{before}");
            assert!(!meaning.contains("retired"), "{meaning}");
            assert!(
                meaning.contains("from 2027-02-01 Microsoft's MC1220762 says"),
                "{meaning}"
            );
            let cause = if status == 403 {
                "lacks"
            } else {
                "not at this URL"
            };
            assert!(
                meaning.find(cause) < meaning.find("MC1220762"),
                "the HTTP cause first: {meaning}"
            );
            assert!(fix.contains("SecurityAlert.Read.All"), "{fix}");
        }
        let retired = advice_on(
            410,
            "Gone",
            "This API has been retired; use Microsoft Graph",
            day("2026-12-01"),
        );
        let meaning = retired.meaning.unwrap();
        assert!(meaning.contains("the API says it is retired"), "{meaning}");
        assert!(retired.fix.unwrap().contains("SecurityAlert.Read.All"));
        let quota = advice_on(429, "", "", day("2027-03-01"));
        assert!(!quota.meaning.unwrap().contains("MC1220762"));
    }
}
