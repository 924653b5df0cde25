//! Which API a tenant reads: the one its config pins, or — for `source = "auto"`, the default —
//! Microsoft Graph when its app may read Graph's alerts, else the Defender for Endpoint API.
//!
//! Why decide at run time rather than in the config: an install that never names a source must
//! move to Graph by itself once an admin grants the permission, and before the MDE API stops
//! (Microsoft's MC1220762 gives 2027-02-01), with nobody awake to edit a file or restart a unit.
//!
//! How an auto tenant decides, and what it costs:
//!
//! - **By the Graph token's permissions.** Each poll asks the tenant's Graph token provider for
//!   its token; it is cached, so this costs nothing until the token is renewed (at 80 % of its
//!   life). A token whose `roles` (application) or `scp` (delegated) hold
//!   `SecurityAlert.Read.All` or `.ReadWrite.All` picks Graph; one without picks the MDE API. A
//!   token that is not a JWT cannot be read, so Graph is tried and its answer decides.
//! - **Again at every renewal.** The decision is kept with the token it was made from: a new
//!   token decides afresh, so a permission granted (or removed) is seen within one token lifetime.
//! - **Again when the API refuses.** Graph answering 401, 403, 404 or 410, or a message that says
//!   the API is retired, makes the tenant read the MDE API until its Graph token is renewed. The
//!   MDE API refusing the same way makes it fetch a fresh Graph token at once and decide again.
//! - **Confirmed by Graph answering.** No probe: the poll's first call is the confirmation, and a
//!   refusal moves that same poll to the other API. So a quiet poll stays one API call, and a
//!   decision costs at most one token request per API per token lifetime.
//!
//! A transient sign-in failure (network, Entra's 5xx) changes nothing: switching away and back
//! would cost a read-back, and the other API's sign-in would most likely fail the same way. A
//! definite one (Entra refusing the Graph sign-in alone: consent missing, no Graph in the tenant)
//! moves the tenant to the MDE API, and Entra is asked again when the MDE API's token is renewed
//! (or that API refuses): a refused sign-in caches no token, so asking at every poll would cost
//! a token request per poll instead of one per token lifetime.

use std::sync::{Arc, Mutex};

use crate::auth::{AccessToken, AuthError, TokenProvider};
use crate::config::{SourceChoice, SourceKind, Warning};
use crate::source::SourceError;

/// Graph's permissions that let an app (or a delegated user) list alerts_v2.
const GRAPH_PERMISSIONS: [&str; 2] = ["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"];

/// Which API a tenant reads, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The API.
    pub api: SourceKind,
    /// Why.
    pub why: Why,
}

/// Why a tenant reads the API it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Why {
    /// The config pins it (`source = "mde"` or `"graph"`).
    Pinned,
    /// Auto: the Graph token carries this alerts permission.
    GraphPermitted(String),
    /// Auto: the Graph token is not a JWT, so its permissions cannot be read; Graph is tried.
    GraphUnreadable,
    /// Auto: the Graph token carries none of `GRAPH_PERMISSIONS` (these are the ones it has).
    GraphNotPermitted(Vec<String>),
    /// Auto: Graph refused the tenant (HTTP status and Graph's code).
    GraphRefused {
        /// HTTP status.
        status: u16,
        /// Graph's error code.
        code: String,
    },
    /// Auto: Entra ID would not sign in for Graph's resource alone (its message).
    GraphSignIn(String),
    /// Auto: the app cannot sign in at all (a wrong secret, tenant or app; Entra out of reach),
    /// so no API can be read until that is fixed; Graph, the default, is tried (its message).
    SignInFailed(String),
    /// Auto: the API it would read could not be reached (this machine's network, a proxy), so it
    /// stays on the API its cursor came from until its next Graph token.
    Unreachable {
        /// The API that could not be reached.
        api: SourceKind,
        /// Why (redacted).
        error: String,
    },
}

impl Why {
    /// A short stable code, for the store and `status --json`.
    pub fn code(&self) -> &'static str {
        match self {
            Why::Pinned => "pinned",
            Why::GraphPermitted(_) => "graph_permitted",
            Why::GraphUnreadable => "graph_token_unreadable",
            Why::GraphNotPermitted(_) => "graph_not_permitted",
            // Each has its own fix: a 401 after a fresh token is the wrong cloud or tenant, a 404
            // or 410 a graph_url that does not lead to alerts_v2, a 403 a missing grant.
            Why::GraphRefused { status: 401, .. } => "graph_token_rejected",
            Why::GraphRefused {
                status: 404 | 410, ..
            } => "graph_not_found",
            Why::GraphRefused { .. } => "graph_refused",
            Why::GraphSignIn(_) => "graph_sign_in_failed",
            Why::SignInFailed(_) => "sign_in_failed",
            Why::Unreachable { .. } => "unreachable",
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Pinned => f.write_str("pinned by the config's source"),
            Why::GraphPermitted(p) => write!(f, "the app holds Microsoft Graph's {p}"),
            Why::GraphUnreadable => f.write_str(
                "the Graph token's permissions cannot be read (not a JWT), so Graph is tried and its answer decides",
            ),
            Why::GraphNotPermitted(seen) if seen.is_empty() => {
                f.write_str("the app lacks Microsoft Graph's SecurityAlert.Read.All")
            }
            Why::GraphNotPermitted(seen) => write!(
                f,
                "the app's Microsoft Graph permissions ({}) do not include SecurityAlert.Read.All",
                seen.join(", ")
            ),
            Why::GraphRefused { status, code } => write!(
                f,
                "Microsoft Graph refused the app (HTTP {status} {code}); Graph is tried again at the next token renewal"
            ),
            Why::GraphSignIn(e) => write!(f, "Entra ID would not sign in for Microsoft Graph: {e}"),
            Why::SignInFailed(e) => write!(
                f,
                "the app could not sign in, so no API can be read until that is fixed: {e}"
            ),
            Why::Unreachable { api, error } => write!(
                f,
                "{} could not be reached, so the tenant stays on the API it was reading until its next token renewal: {error}",
                api.title()
            ),
        }
    }
}

/// The state of one tenant's choice. Kept for the life of its `env::TenantEnv`.
#[derive(Debug)]
pub(crate) struct Route {
    choice: SourceChoice,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    decision: Option<Decision>,
    /// The generation of the Graph token the decision was made with.
    graph_token: Option<u64>,
    /// Entra refused the Graph sign-in for good while the MDE API's token of this generation
    /// was current: Graph's sign-in is not asked again until that token is renewed.
    sign_in_refused: Option<u64>,
}

impl Route {
    /// The route of a tenant whose config says `choice`.
    pub(crate) fn new(choice: SourceChoice) -> Route {
        Route {
            choice,
            state: Mutex::new(State::default()),
        }
    }

    /// What the config says.
    pub(crate) fn choice(&self) -> SourceChoice {
        self.choice
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last decision, if one was made.
    pub(crate) fn decision(&self) -> Option<Decision> {
        self.lock().decision.clone()
    }

    /// The API the tenant reads now: the pinned one, the last decision, or Graph before any.
    pub(crate) fn current(&self) -> SourceKind {
        self.choice
            .pinned()
            .or_else(|| self.lock().decision.as_ref().map(|d| d.api))
            .unwrap_or(SourceKind::Graph)
    }

    /// Decides which API this poll reads. `graph` and `mde` are the tenant's token providers (an
    /// auto tenant always has both). Costs a token request only when the Graph token is due for
    /// renewal, or, after Entra refused the Graph sign-in, when the MDE API's token is.
    pub(crate) async fn decide(
        &self,
        graph: Option<&TokenProvider>,
        mde: Option<&TokenProvider>,
    ) -> Decision {
        let auto = match (self.choice.pinned(), graph) {
            (Some(api), _) => {
                return self.remember(
                    Decision {
                        api,
                        why: Why::Pinned,
                    },
                    None,
                );
            }
            (None, Some(g)) => g,
            (None, None) => {
                return self.remember(
                    Decision {
                        api: SourceKind::Mde,
                        why: Why::GraphSignIn("no Graph sign-in is configured".into()),
                    },
                    None,
                );
            }
        };
        // The MDE API's token is needed anyway while the refusal holds: the tenant reads it.
        let held = self.lock().sign_in_refused;
        let mde_token = match (held, mde) {
            (Some(_), Some(m)) => m.token().await.ok().map(|t| t.generation()),
            _ => None,
        };
        {
            let mut st = self.lock();
            if let (Some(held), Some(d)) = (st.sign_in_refused, &st.decision)
                && mde_token == Some(held)
            {
                return d.clone();
            }
            st.sign_in_refused = None;
        }
        match auto.token().await {
            Ok(token) => self.decide_with(&token),
            Err(e) => {
                let hold = match mde {
                    Some(m) if refuses_only_this_resource(&e) => {
                        m.token().await.ok().map(|t| t.generation())
                    }
                    _ => None,
                };
                self.sign_in_failed(e, hold)
            }
        }
    }

    /// The decision for `token`, Graph's current token: the one made with it before, if any.
    fn decide_with(&self, token: &Arc<AccessToken>) -> Decision {
        {
            let st = self.lock();
            if let Some(d) = &st.decision
                && st.graph_token == Some(token.generation())
            {
                return d.clone();
            }
        }
        let claims = token.claims();
        let decision = if !claims.is_object() {
            Decision {
                api: SourceKind::Graph,
                why: Why::GraphUnreadable,
            }
        } else {
            match graph_permission(&claims) {
                Ok(p) => Decision {
                    api: SourceKind::Graph,
                    why: Why::GraphPermitted(p),
                },
                Err(seen) => Decision {
                    api: SourceKind::Mde,
                    why: Why::GraphNotPermitted(seen),
                },
            }
        };
        self.remember(decision, Some(token.generation()))
    }

    /// No Graph token. A refusal of Graph's resource alone (consent missing, an unknown resource)
    /// reads the MDE API, and holds while the MDE API's token of generation `hold` is current.
    /// Anything else (a wrong secret, tenant or app; Entra out of reach) would fail the MDE API's
    /// sign-in alike: the last decision stands (or Graph is tried), and the poll fails with the
    /// sign-in error and its fix, not with advice to grant a Graph permission the app may hold.
    fn sign_in_failed(&self, e: AuthError, hold: Option<u64>) -> Decision {
        if !refuses_only_this_resource(&e) {
            return self.lock().decision.clone().unwrap_or(Decision {
                api: SourceKind::Graph,
                why: Why::SignInFailed(e.to_string()),
            });
        }
        let mut st = self.lock();
        let d = Decision {
            api: SourceKind::Mde,
            why: Why::GraphSignIn(graph_sign_in_text(&e)),
        };
        st.decision = Some(d.clone());
        st.graph_token = None;
        st.sign_in_refused = hold;
        d
    }

    fn remember(&self, d: Decision, graph_token: Option<u64>) -> Decision {
        let mut st = self.lock();
        st.decision = Some(d.clone());
        st.graph_token = graph_token;
        st.sign_in_refused = None;
        d
    }

    /// `api` refused the tenant with `error`. Returns the API to read instead, when an auto
    /// tenant has one: after Graph refuses, the MDE API until Graph's next token; after the MDE
    /// API refuses, Graph if a fresh Graph token carries the permission.
    pub(crate) async fn refused(
        &self,
        api: SourceKind,
        error: &SourceError,
        graph: Option<&TokenProvider>,
    ) -> Option<Decision> {
        if self.choice.pinned().is_some() || !is_refusal(error) {
            return None;
        }
        let graph = graph?;
        match api {
            SourceKind::Graph => {
                let token = graph.token().await.ok()?;
                let (status, code) = match error {
                    SourceError::Refused { status, code, .. } => (*status, code.to_string()),
                    _ => (0, "sign-in".to_owned()),
                };
                Some(self.remember(
                    Decision {
                        api: SourceKind::Mde,
                        why: Why::GraphRefused { status, code },
                    },
                    Some(token.generation()),
                ))
            }
            SourceKind::Mde => {
                // A permission granted since the token was issued is in a fresh one only.
                if let Ok(old) = graph.token().await {
                    graph.reject(&old).await;
                }
                let d = match graph.token().await {
                    Ok(token) => {
                        self.lock().graph_token = None;
                        self.decide_with(&token)
                    }
                    // No hold: the MDE API refusing is itself the reason to ask again next time.
                    Err(e) => self.sign_in_failed(e, None),
                };
                (d.api == SourceKind::Graph).then_some(d)
            }
        }
    }
}

impl Route {
    /// `api` could not be reached (`error`: the network, a proxy that redirects or does not
    /// answer) and the tenant's cursor came from `owner`: an auto tenant reads `owner` instead
    /// until its next Graph token. A move takes effect only when the new API answers, so an
    /// upgrade on a machine whose firewall lets only the MDE API through keeps working.
    pub(crate) async fn unreachable(
        &self,
        api: SourceKind,
        owner: SourceKind,
        error: &SourceError,
        graph: Option<&TokenProvider>,
    ) -> Option<Decision> {
        if self.choice.pinned().is_some() || owner == api || !is_unreachable(error) {
            return None;
        }
        let token = match graph {
            Some(g) => g.token().await.ok().map(|t| t.generation()),
            None => None,
        };
        Some(self.remember(
            Decision {
                api: owner,
                why: Why::Unreachable {
                    api,
                    error: error.to_string(),
                },
            },
            token,
        ))
    }
}

/// Entra's refusal of the Graph sign-in, in words about Graph. Entra's own explanations of
/// AADSTS65001 and 500011 are written for the MDE API's sign-in (its WindowsDefenderATP
/// permissions, its resource), which would send an admin to the wrong permission.
fn graph_sign_in_text(e: &AuthError) -> String {
    let AuthError::Entra(entra) = e else {
        return e.to_string();
    };
    let code = entra.codes.first().copied();
    let said = match code {
        Some(c) => format!("AADSTS{c} ({}): {}", entra.error, entra.description),
        None => format!(
            "{} (HTTP {}): {}",
            entra.error, entra.status, entra.description
        ),
    };
    match code {
        Some(65001 | 650057) => format!(
            "{said} — the app's Microsoft Graph permission has not been consented to in this tenant"
        ),
        Some(500011) => format!(
            "{said} — Microsoft Graph's resource was not found in this tenant: check graph_url (it names the Graph root of the tenant's cloud)"
        ),
        _ => e.to_string(),
    }
}

/// Whether `e` says the API could not be reached at all (as opposed to refusing the tenant).
fn is_unreachable(e: &SourceError) -> bool {
    matches!(
        e,
        SourceError::Unavailable { .. } | SourceError::Redirected { .. }
    )
}

/// Whether a recorded choice (its `api` and `reason`, a [`Why::code`]) still describes a tenant
/// whose config now says `choice`. A config edit between `auto` and a pinned source leaves the
/// last poll's row in the store until the next poll, and its reason would then be shown as this
/// tenant's: "pinned" for an auto tenant, or "the app holds Graph's permission" for one pinned
/// to the MDE API.
pub fn still_describes(choice: SourceChoice, api: &str, reason: &str) -> bool {
    match choice.pinned() {
        Some(pinned) => reason == Why::Pinned.code() && api == pinned.as_str(),
        None => reason != Why::Pinned.code(),
    }
}

/// The warning for a tenant that reads the MDE API, by why it does (`reason`, a [`Why::code`],
/// for `auto`); `None` for a tenant on Graph. The words depend on the situation only, not on the
/// tenant, so that many tenants in one situation are said once.
pub fn mde_warning(
    choice: SourceChoice,
    api: Option<SourceKind>,
    reason: Option<&str>,
) -> Option<Warning> {
    let announced = crate::config::mde_announcement();
    let grant = super::graph::GRANT;
    let moves = "it then moves to Graph by itself at its next token renewal (within the hour), with no restart and no config edit";
    let retry = "the tenant tries Graph again at its next token renewal";
    let (why, fix) = match (choice, api) {
        (SourceChoice::Mde, _) => return Some(crate::config::mde_deprecation()),
        (SourceChoice::Auto, Some(SourceKind::Mde)) => match reason {
            Some("graph_refused") => (
                "Microsoft Graph refused its app (source = \"auto\"; the reason is in its status)",
                format!("{grant}; {moves}"),
            ),
            Some("graph_token_rejected") => (
                "Microsoft Graph rejected the app's token even after renewal (HTTP 401; source = \"auto\"; the reason is in its status)",
                format!(
                    "check tenant_id, and that graph_url is the Graph root of the tenant's cloud (https://graph.microsoft.com; graph.microsoft.us for GCC High, dod-graph.microsoft.us for DoD); {retry}"
                ),
            ),
            Some("graph_not_found") => (
                "Microsoft Graph answered that security/alerts_v2 is not there (HTTP 404 or 410; source = \"auto\"; the reason is in its status)",
                format!(
                    "check graph_url: it is the Graph root (e.g. https://graph.microsoft.com), alerts live at /v1.0/security/alerts_v2 under it, and a proxy or private endpoint must pass that path on; {retry}"
                ),
            ),
            Some("unreachable") => (
                "Microsoft Graph could not be reached from this machine (source = \"auto\"; the reason is in its status)",
                format!("let this machine reach graph_url (firewall, [http] proxy); {retry}"),
            ),
            Some("graph_sign_in_failed") => (
                "Entra ID would not sign its app in for Microsoft Graph (source = \"auto\"; the reason is in its status)",
                format!("{grant}; {moves}"),
            ),
            _ => (
                "its app holds no Microsoft Graph permission to read alerts (source = \"auto\")",
                format!("{grant}; {moves}"),
            ),
        },
        _ => return None,
    };
    Some(Warning::new(
        format!("reads the Defender for Endpoint API because {why}. {announced}"),
        fix,
    ))
}

/// The Graph alerts permission in `claims` (`roles` of an app token, `scp` of a delegated one),
/// or the permissions it has instead.
fn graph_permission(claims: &serde_json::Value) -> Result<String, Vec<String>> {
    let seen = crate::auth::permissions_in(claims);
    match seen
        .iter()
        .find(|p| GRAPH_PERMISSIONS.contains(&p.as_str()))
    {
        Some(p) => Ok(p.clone()),
        None => Err(seen),
    }
}

/// Whether the API's answer says it will not serve this tenant: 401 (after a fresh token), 403,
/// 404 or 410, or any answer whose text says the API is retired. Throttling, server errors and
/// broken pages are not refusals: they say nothing of which API the tenant may read.
pub(crate) fn is_refusal(e: &SourceError) -> bool {
    match e {
        SourceError::Refused {
            status,
            code,
            message,
            ..
        } => {
            matches!(status, 401 | 403 | 404 | 410)
                || says_retired(&code.to_string())
                || says_retired(&message.to_string())
        }
        SourceError::Auth(e) => refuses_only_this_resource(e),
        _ => false,
    }
}

/// Whether Entra refused the sign-in for one API's resource alone (the resource is not in the
/// tenant, or its permission awaits consent), so the other API's sign-in may still succeed.
fn refuses_only_this_resource(e: &AuthError) -> bool {
    matches!(e, AuthError::Entra(entra)
        if entra.codes.iter().any(|c| matches!(c, 500011 | 65001 | 650057)))
}

/// Whether a server's text says the API is retired or switched off.
pub(crate) fn says_retired(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "retired",
        "retirement",
        "deprecated",
        "decommission",
        "no longer available",
        "no longer supported",
        "no longer function",
        "switched off",
        "sunset",
    ]
    .iter()
    .any(|w| t.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn either_graph_permission_in_roles_or_scopes_is_enough() {
        assert_eq!(
            graph_permission(&json!({"roles": ["User.Read.All", "SecurityAlert.Read.All"]})),
            Ok("SecurityAlert.Read.All".to_owned())
        );
        assert_eq!(
            graph_permission(&json!({"scp": "openid SecurityAlert.ReadWrite.All"})),
            Ok("SecurityAlert.ReadWrite.All".to_owned())
        );
        assert_eq!(
            graph_permission(&json!({"roles": ["SecurityEvents.Read.All"]})),
            Err(vec!["SecurityEvents.Read.All".to_owned()])
        );
        assert_eq!(graph_permission(&json!({})), Err(vec![]));
    }

    fn refused(status: u16, message: &str) -> SourceError {
        SourceError::Refused {
            api: "test",
            status,
            code: crate::redact::ServerText::new("Code"),
            message: crate::redact::ServerText::new(message),
            advice: Default::default(),
        }
    }

    #[test]
    fn refusals_are_the_answers_that_say_which_api_may_be_read() {
        for s in [401, 403, 404, 410] {
            assert!(is_refusal(&refused(s, "x")), "{s}");
        }
        for s in [400, 429, 500, 503] {
            assert!(!is_refusal(&refused(s, "x")), "{s}");
        }
        assert!(is_refusal(&refused(
            400,
            "This API has been retired. Use Microsoft Graph."
        )));
        assert!(!is_refusal(&SourceError::Deadline {
            wait: std::time::Duration::from_secs(1)
        }));
    }

    #[test]
    fn a_pinned_tenant_never_moves() {
        let r = Route::new(SourceChoice::Mde);
        let d = tokio_test_block_on(r.decide(None, None));
        assert_eq!(d.api, SourceKind::Mde);
        assert_eq!(d.why, Why::Pinned);
        assert!(
            tokio_test_block_on(r.refused(SourceKind::Mde, &refused(410, "gone"), None)).is_none()
        );
        assert_eq!(r.current(), SourceKind::Mde);
    }

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }
}
