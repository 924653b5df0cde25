//! Microsoft Graph's `GET /v1.0/security/alerts_v2`, the MDE API's successor: its query and what
//! its errors mean. The HTTP machinery is [`super::client`]'s.
//!
//! What Graph does not document, and how the pager copes (`docs/defender-api.md` §4.2a):
//!
//! - `$orderby` is undocumented (the documented order is newest first). We ask for
//!   `lastUpdateDateTime asc` and [`crate::poll`] checks every page; when Graph refuses (400) or
//!   ignores it, the pager reads bounded time windows instead.
//! - `$top` is at most 1,000 (the config caps `page_size` for Graph tenants) and `$skip` at most
//!   500 (`MAX_SKIP`): an instant shared by more alerts than a page is split by
//!   `createdDateTime` before any `$skip`, and past 500 the pager follows `@odata.nextLink` —
//!   only on the configured host (see [`super::client`]).
//! - Null comparisons (`createdDateTime eq null`) are not documented: refused, the pager reads
//!   the instant without a creation clause instead.
//! - `serviceSource` clauses are joined by `or`, which Graph's `$filter` documentation lists
//!   among its operators; the pager also checks `serviceSource` on every alert it receives.
//! - Newer enum members come back as `unknownFutureValue` unless the request says
//!   `Prefer: include-unknown-enum-members`, which every request does.
//! - Graph returns every Defender product's alerts; `services` becomes a `serviceSource` clause.

use super::{Advice, PageRequest};
use crate::config::Services;

/// The API's name in messages.
pub(crate) const API: &str = "Microsoft Graph (security/alerts_v2)";
/// The alerts path under the Graph root.
pub(crate) const PATH: &str = "v1.0/security/alerts_v2";
/// Graph's largest `$skip` (the security API's documented constraint; above it, 400).
pub(crate) const MAX_SKIP: u32 = 500;

/// The query string for a request.
pub(crate) fn query(r: &PageRequest, services: &Services) -> Vec<(&'static str, String)> {
    let mut filter = r.time_filter("lastUpdateDateTime", "createdDateTime");
    if let Services::Only(list) = services {
        let clauses: Vec<String> = list
            .iter()
            .map(|s| format!("serviceSource eq '{s}'"))
            .collect();
        match clauses.len() {
            0 => {}
            1 => filter.push_str(&format!(" and {}", clauses[0])),
            _ => filter.push_str(&format!(" and ({})", clauses.join(" or "))),
        }
    }
    let mut q = vec![("$filter", filter)];
    if r.ordered {
        q.push(("$orderby", "lastUpdateDateTime asc".to_owned()));
    }
    q.push(("$top", r.top.to_string()));
    if r.skip > 0 {
        q.push(("$skip", r.skip.min(MAX_SKIP).to_string()));
    }
    q
}

/// The fix for Graph's missing permission, in the words of the Entra portal.
pub const GRANT: &str = "in Entra ID open App registrations → the app → API permissions → Add a permission → Microsoft Graph → Application permissions → SecurityAlert.Read.All → Grant admin consent (it is a Microsoft Graph permission, not WindowsDefenderATP's Alert.Read.All; with auth = \"password\" grant it as a delegated permission and give the user Security Reader or higher)";

/// What a refusal means and what to do about it, by HTTP status and Graph's error code.
pub(crate) fn advice(status: u16, code: &str) -> Advice {
    match status {
        401 => Advice::new(
            "the token was rejected even after renewal",
            "check tenant_id, and that graph_url is this cloud's Graph root, which is the token's audience (https://graph.microsoft.com; graph.microsoft.us for GCC High, dod-graph.microsoft.us for DoD)",
        ),
        403 => Advice::new("the app lacks SecurityAlert.Read.All", GRANT),
        400 => Advice::new(
            format!("Graph rejected the query ({code})"),
            "if graph_url points at a proxy or private endpoint, check that it passes $filter, $orderby, $top and $skip unchanged",
        ),
        404 => Advice::new(
            "security/alerts_v2 is not at this URL",
            "check graph_url: alerts live at /v1.0/security/alerts_v2 under the Graph root (e.g. https://graph.microsoft.com)",
        ),
        429 => Advice::new(
            "Graph's quota (150 requests/min per app per tenant) is spent",
            "give mde-alerts an app registration of its own if another tool shares this one",
        ),
        _ => Advice::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::time::ApiTime;
    use crate::source::{Bound, Created};
    use std::time::Duration;

    #[test]
    fn query_uses_graph_names_and_the_service_clause() {
        let t = ApiTime::parse("2024-05-01T10:00:00.5Z").unwrap();
        let q = query(
            &PageRequest {
                bound: Bound::AtOrAfter(t),
                before: Some(t.plus(Duration::from_secs(1))),
                created: None,
                ordered: true,
                top: 1000,
                skip: 0,
            },
            &Services::endpoint(),
        );
        assert_eq!(
            q,
            vec![
                ("$filter", "lastUpdateDateTime ge 2024-05-01T10:00:00.5000000Z and lastUpdateDateTime lt 2024-05-01T10:00:01.5000000Z and serviceSource eq 'microsoftDefenderForEndpoint'".to_owned()),
                ("$orderby", "lastUpdateDateTime asc".to_owned()),
                ("$top", "1000".to_owned()),
            ]
        );
        let q = query(
            &PageRequest {
                bound: Bound::Exactly(t),
                before: None,
                created: Some(Created::Within(Some(t), None)),
                ordered: false,
                top: 10,
                skip: 900,
            },
            &Services::All,
        );
        assert_eq!(
            q[0].1,
            "lastUpdateDateTime eq 2024-05-01T10:00:00.5000000Z and createdDateTime ge 2024-05-01T10:00:00.5000000Z"
        );
        assert!(
            q.contains(&("$skip", "500".to_owned())),
            "never above Graph's limit"
        );
        let two = Services::Only(vec![
            "microsoftDefenderForEndpoint",
            "microsoftDefenderForOffice365",
        ]);
        let q = query(
            &PageRequest {
                bound: Bound::After(t),
                before: None,
                created: Some(Created::Missing),
                ordered: false,
                top: 1,
                skip: 0,
            },
            &two,
        );
        assert!(q[0].1.ends_with("createdDateTime eq null and (serviceSource eq 'microsoftDefenderForEndpoint' or serviceSource eq 'microsoftDefenderForOffice365')"), "{}", q[0].1);
    }

    #[test]
    fn a_missing_permission_says_what_to_grant() {
        let h = advice(403, "Forbidden").fix.unwrap();
        assert!(h.contains("Microsoft Graph → Application permissions → SecurityAlert.Read.All"));
        assert!(h.contains("Grant admin consent"));
        assert!(h.contains("not WindowsDefenderATP"));
    }
}
