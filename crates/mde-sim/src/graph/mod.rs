//! Microsoft Graph's `GET /v1.0/security/alerts_v2`, served from the same world as
//! `/api/alerts`.
//!
//! # The world as Graph sees it
//!
//! - Every endpoint alert, in Graph's shape ([`graph_view`]), except the *MDE-only* ones: a
//!   [`SimConfig::mde_only_share`](crate::SimConfig::mde_only_share) of them (2 % by default)
//!   stand for alerts suppressed by tuning rules or standalone outside an incident, which
//!   Microsoft documents alerts_v2 leaves out. Which ones is a pure function of the id.
//! - *Graph-only* alerts of other Defender products, which `/api/alerts` never returns:
//!   Office 365 (`fa` + GUID, `providerAlertId` the bare GUID; mailbox, message and URL
//!   evidence), Identity (`aa…`; user and IP evidence), Cloud Apps (`ca…`; user, IP and cloud
//!   application evidence) and Defender for Cloud (`dc…`; a `serviceSource` and a
//!   `detectionSource` newer than the documented members). There are
//!   [`SimConfig::graph_only_share`](crate::SimConfig::graph_only_share) of them per endpoint
//!   alert (10 % by default), made with random numbers of their own so the endpoint world is
//!   the same as without them, and created, updated and made late by the same calls and
//!   hazards as endpoint alerts ([`Simulator::create`](crate::Simulator::create),
//!   [`Simulator::update_random`](crate::Simulator::update_random), the mutator,
//!   `mutate_per_page`, `late_fraction`).
//!
//! # Mapping (Defender JSON → Graph JSON, [`graph_view`])
//!
//! | Defender (`/api/alerts`) | Graph (`alerts_v2`) |
//! |---|---|
//! | `id` | `id` and `providerAlertId` (the same text) |
//! | `incidentId` (number) | `incidentId` (string); `incidentWebUrl` `https://security.microsoft.com/incidents/<incidentId>?tid=<tenant>` |
//! | `status` `New`/`InProgress`/`Resolved`/`Unknown` | `new`/`inProgress`/`resolved`/`unknown`; other values camelCased |
//! | `severity` `UnSpecified`/`Informational`/… | `unknown`/`informational`/…; other values camelCased (`Critical` → `critical`) |
//! | `classification`, `determination` | camelCased (`TruePositive` → `truePositive`); null stays null |
//! | `detectionSource` | Graph's member: `WindowsDefenderAtp` → `microsoftDefenderForEndpoint`, `WindowsDefenderAv` → `antivirus`, `WindowsDefenderSmartScreen` → `smartScreen`, `CustomerTI` → `customTi`, `CustomDetection` → `customDetection`, `AutomatedInvestigation` → `automatedInvestigation`, `MTP` → `microsoft365Defender`, `OfficeATP` → `microsoftDefenderForOffice365`, `ThreatExperts` → `microsoftThreatExperts`, `Manual` → `manual`, `MCAS` → `cloudAppSecurity`, `AAD` → `azureAdIdentityProtection`, `AppGPolicy`/`AppGDetection` → `appGovernancePolicy`/`appGovernanceDetection`; others camelCased |
//! | `detectorId`, `category`, `title`, `description`, `assignedTo`, `threatFamilyName`, `mitreTechniques` | the same names |
//! | `threatName` | `threatDisplayName` |
//! | `aadTenantId` | `tenantId` |
//! | `alertCreationTime` | `createdDateTime` (the same text) |
//! | `lastUpdateTime` | `lastUpdateDateTime` (the same text, so the same instant) |
//! | `resolvedTime` | `resolvedDateTime` |
//! | `firstEventTime`, `lastEventTime` | `firstActivityDateTime`, `lastActivityDateTime` |
//! | `machineId`, `computerDnsName`, `rbacGroupName`, `loggedOnUsers` | the `deviceEvidence` item (always first when either of the first two is set): `mdeDeviceId`, `deviceDnsName`, `rbacGroupName`, `loggedOnUsers` `[{accountName, domainName}]`, plus `hostName`, `dnsDomain`, `osPlatform`, … |
//! | `relatedUser` `{userName, domainName}` | the first `userEvidence` item: `userAccount {accountName, domainName, userSid, azureAdUserId, userPrincipalName}` (sid and UPN taken from the Defender `User` evidence item of the same account, which is then not repeated). Without a `relatedUser` the first `userEvidence` is an ordinary evidence item: this direction is lossy |
//! | `comments` `[{comment, createdBy, createdTime}]` | `comments` `[{comment, createdByDisplayName, createdDateTime}]` |
//! | `evidence` (`User`, `Process`, `File`, `Ip`, `Url`, `Registry`, others) | inline (no `$expand`), typed by `@odata.type`: `userEvidence`, `processEvidence {processId, parentProcessId, processCommandLine, processCreationDateTime, imageFile {sha1, sha256, fileName, filePath}, parentProcessImageFile, mdeDeviceId, detectionStatus}`, `fileEvidence {fileDetails {sha1, sha256, fileName, filePath}, mdeDeviceId, detectionStatus}`, `ipEvidence`, `urlEvidence`, `registryValueEvidence`, `<camelCased type>Evidence`; one alert in twenty also carries a `#microsoft.graph.security.futureThingEvidence` |
//! | `investigationState` | camelCased (`Benign` → `benign`), a v1.0 property since 2025-11 |
//! | `investigationId`, `threatFamily`, `domains`, unknown extras | no counterpart: dropped |
//! | — | new: `serviceSource` (`microsoftDefenderForEndpoint`), `productName` (`Microsoft Defender for Endpoint`), `alertWebUrl` (`https://security.microsoft.com/alerts/<id>?tid=<tenant>`), `recommendedActions`, `actorDisplayName` (null), `systemTags`, `alertPolicyId`, `additionalData` |
//!
//! So a client can rebuild the Defender CSV columns from Graph: computerDnsName, machineId and
//! rbacGroupName from the `deviceEvidence`, relatedUser from the first `userEvidence`,
//! threatName from `threatDisplayName`, the times from the renamed fields (a test does exactly
//! that).
//!
//! # The endpoint
//!
//! `$filter` in Graph's names (see [`odata::Dialect::Graph`](crate::odata::Dialect::Graph)),
//! `$top` (100 when absent, above 1000 → 400), `$skip` (above 500 → 400), `$count=true`
//! (`@odata.count`), `$orderby=lastUpdateDateTime|createdDateTime asc|desc` (see
//! [`GraphOrderBy`]); newest first (`createdDateTime desc`, ties by id, descending) without one.
//! The `$` is optional, as in Graph v1.0; any other `$` option is 400. When more results match,
//! `@odata.nextLink` is an absolute URL on the host called, with the query and an opaque
//! `$skiptoken` (a keyset position, so alerts that change while a client pages move in or out of
//! the rest of the pages as they would on a live service). Errors have Graph's body
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
//! Without `Prefer: include-unknown-enum-members` evolvable enum values newer than the documented
//! members become `unknownFutureValue` ([`mask_unknown_enums`]).
//!
//! Tokens: the audience must be a Graph root ([`GRAPH_ROOTS`], or exactly
//! [`SimConfig::graph_audience`](crate::SimConfig::graph_audience)) else 401
//! `InvalidAuthenticationToken`; the roles (or delegated scopes) must hold
//! `SecurityAlert.Read.All` or `SecurityAlert.ReadWrite.All` else 403 `Forbidden`.

mod api;
mod view;
mod world;

#[cfg(test)]
mod tests;

pub use crate::hazards::GraphOrderBy;
pub use view::{graph_view, mask_unknown_enums};

pub(crate) use api::{alert_v2, alerts_v2, graph_error, visible_views};
pub(crate) use view::{CachedView, ENDPOINT, id_hash, is_graph_shaped, service_of};
pub(crate) use world::{GraphMaker, is_mde_only};

use std::time::Instant;

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::Response;

use crate::truth::TruthAlert;
use crate::{Shared, SimConfig, Simulator, World};

/// Microsoft Graph's root in the global cloud (and GCC): the token audience, and `/.default`
/// after it the scope.
pub const GRAPH_ROOT: &str = "https://graph.microsoft.com";

/// Graph's roots in the clouds that have alerts_v2: global, US Gov L4 (GCC High) and US Gov L5
/// (DoD).
pub const GRAPH_ROOTS: [&str; 3] = [
    GRAPH_ROOT,
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
];

/// One request the simulator received, for tests that check where a token went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSeen {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Whether it carried an `Authorization` header (of any kind).
    pub authorized: bool,
}

/// The most requests [`Simulator::requests`] remembers (the oldest are forgotten).
const MAX_REQUESTS_SEEN: usize = 10_000;

/// Records every request before it is answered.
pub(crate) async fn record(AxState(s): AxState<Shared>, req: Request, next: Next) -> Response {
    {
        let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
        if st.requests.len() >= MAX_REQUESTS_SEEN {
            st.requests.pop_front();
        }
        st.requests.push_back(RequestSeen {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            authorized: req
                .headers()
                .contains_key(axum::http::header::AUTHORIZATION),
        });
    }
    next.run(req).await
}

impl Simulator {
    /// The latest visible Graph view of every alert alerts_v2 returns (endpoint alerts minus the
    /// MDE-only ones, plus the Graph-only ones), of the given `serviceSource`s (all when
    /// empty). The JSON has the real enum values, as served with `Prefer:
    /// include-unknown-enum-members`; `last_update` is its `lastUpdateDateTime`. Alerts none of
    /// whose versions is visible yet are left out.
    pub fn graph_truth(&self, services: &[&str]) -> Vec<TruthAlert> {
        let st = self.lock();
        graph_truth_of(&st.home, &st.cfg, services)
    }

    /// The ids of the endpoint alerts `/api/alerts` returns and alerts_v2 does not.
    pub fn mde_only_ids(&self) -> Vec<String> {
        let st = self.lock();
        let share = st.cfg.mde_only_share;
        st.home
            .alerts
            .keys()
            .filter(|id| is_mde_only(id, share))
            .cloned()
            .collect()
    }

    /// Every request received so far (the last ten thousand), oldest first.
    pub fn requests(&self) -> Vec<RequestSeen> {
        self.lock().requests.iter().cloned().collect()
    }

    /// Replaces the hazards of alerts_v2 alone (`None`: the same as `/api/alerts`).
    pub fn set_graph_hazards(&self, h: Option<crate::Hazards>) {
        self.lock().cfg.graph_hazards = h;
    }
}

/// A world's Graph oracle (see [`Simulator::graph_truth`]).
pub(crate) fn graph_truth_of(w: &World, cfg: &SimConfig, services: &[&str]) -> Vec<TruthAlert> {
    let mut out: Vec<TruthAlert> = visible_views(w, cfg.mde_only_share, Instant::now())
        .into_iter()
        .map(|(ticks, v)| (ticks, &v.map))
        .filter(|(_, g)| {
            services.is_empty()
                || g.get("serviceSource")
                    .and_then(|s| s.as_str())
                    .is_some_and(|s| services.contains(&s))
        })
        .map(|(ticks, g)| TruthAlert {
            id: g
                .get("id")
                .and_then(|i| i.as_str())
                .unwrap_or_default()
                .to_owned(),
            last_update: ticks,
            json: serde_json::Value::Object(g.clone()),
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
