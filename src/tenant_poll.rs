//! One tenant's poll on the API its route picks ([`crate::source::route`]): decide, read, and
//! when the API refuses, decide again and read the other one in the same poll. `poll` and `run`
//! both come through here, so a one-off poll and the service move between APIs alike.
//!
//! A move between APIs goes through the pager's read-back ([`crate::poll`]): the cursor records
//! which API moved it, so the first poll on the other API re-reads what the two may disagree on,
//! and every alert stays one row in its latest state.

use std::sync::{Arc, Mutex};

use crate::config::SourceKind;
use crate::env::{Environment, TenantEnv};
use crate::poll::{PollError, PollReport, poll_tenant};
use crate::source::SourceError;
use crate::source::route::{Decision, Why};
use crate::store::{Store, StoreError};

/// Polls `tenant` once on the API its route picks, moving to the other API within the poll when
/// the first refuses the tenant (auto tenants only). The decision the poll settles on is recorded
/// in the store when it changes, for `status`: an attempt the first API refused is not a decision,
/// so a tenant that Graph refuses at every token renewal does not flap in the store or the log.
pub(crate) async fn poll(
    env: &Environment,
    tenant: &TenantEnv,
    store: &Arc<Mutex<Store>>,
    deadline: Option<tokio::time::Instant>,
) -> Result<PollReport, PollError> {
    let graph = tenant.graph.as_ref().map(|l| &*l.tokens);
    let mde = tenant.mde.as_ref().map(|l| &*l.tokens);
    let mut decision = tenant.route.decide(graph, mde).await;
    let mut tried: Vec<SourceKind> = Vec::new();
    // The API this poll moved off, and what it answered.
    let mut moved: Option<(SourceKind, SourceError)> = None;
    let result = loop {
        let api = decision.api;
        tried.push(api);
        let Some(source) = env.source(tenant, api, deadline) else {
            // An auto tenant has both lanes and a pinned one decides only its own.
            unreachable!("the route picked an API the tenant has no lane for");
        };
        let settings = env.poll_settings(api);
        let result = poll_tenant(&source, store, &tenant.cfg.name, settings).await;
        let Err(PollError::Source(error)) = result else {
            break result;
        };
        let next = match tenant.route.refused(api, &error, graph).await {
            Some(next) => Some(next),
            None => match owner(store, &tenant.cfg.name).await? {
                Some(owner) => tenant.route.unreachable(api, owner, &error, graph).await,
                None => None,
            },
        };
        match next {
            Some(next) if !tried.contains(&next.api) => {
                moved = Some((api, error));
                decision = next;
            }
            // Refused by the MDE API, and Graph is not readable either: say both, each with its
            // own cause and fix.
            _ if tenant.route.choice().pinned().is_none()
                && api == SourceKind::Mde
                && crate::source::route::is_refusal(&error) =>
            {
                let (why, fix) = match &moved {
                    // Graph was tried in this poll: its own answer (the HTTP cause first, and
                    // the fix that answer calls for: a missing grant, a proxy, a wrong URL).
                    Some((SourceKind::Graph, graph_error)) => {
                        (graph_error.to_string(), graph_error.hint())
                    }
                    _ => (
                        tenant
                            .route
                            .decision()
                            .map_or_else(|| decision.why.to_string(), |d| d.why.to_string()),
                        Some(crate::source::graph::GRANT.to_owned()),
                    ),
                };
                break Err(PollError::NoApi {
                    refusal: Box::new(for_auto(error)),
                    why,
                    fix,
                });
            }
            _ => break Err(PollError::Source(error)),
        }
    };
    let changed = record(store, tenant, &decision).await?;
    if let Some((from, error)) = moved {
        // Said once, when the choice changes: a refusal repeated at every token renewal (or every
        // one-off poll, each with a fresh token) changes nothing an admin needs to read again.
        if changed {
            tracing::warn!(
                tenant = %tenant.cfg.name,
                from = from.as_str(),
                to = decision.api.as_str(),
                error = %error,
                fix = error.hint().as_deref(),
                why = %decision.why,
                "The API refused the tenant or could not be reached; it read the other API in this poll."
            );
        } else {
            tracing::debug!(
                tenant = %tenant.cfg.name,
                from = from.as_str(),
                to = decision.api.as_str(),
                error = %error,
                "The API refused the tenant again; it read the other API, as before."
            );
        }
    }
    result
}

/// The MDE API's refusal as an auto tenant reads it: the retirement's fix is written for a
/// tenant pinned with `source = "mde"` (remove that line), which an auto tenant has not got; its
/// fix is said by [`PollError::NoApi`] instead.
fn for_auto(mut error: SourceError) -> SourceError {
    if let SourceError::Refused {
        code,
        message,
        advice,
        ..
    } = &mut error
        && (crate::source::route::says_retired(code.as_str())
            || crate::source::route::says_retired(message.as_str()))
    {
        advice.fix = None;
    }
    error
}

/// Logs a finished poll: at INFO only when something happened to the tenant (alerts stored,
/// throttling, a poll cut short, alerts dated in the future), else at DEBUG, so that a quiet
/// service of a thousand tenants logs one summary line per interval, not a line per tenant. The
/// numbers are fields (JSON logs carry them as such), and the message says them too.
pub(crate) fn log_finished(r: &PollReport) {
    let c = &r.counts;
    let eventful = c.new > 0
        || c.updated > 0
        || c.invalid > 0
        || r.throttled > 0
        || r.future > 0
        || r.outcome != crate::store::Outcome::Ok;
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                $level,
                tenant = %r.tenant,
                new = c.new,
                updated = c.updated,
                unchanged = c.unchanged,
                stale = c.stale,
                invalid = c.invalid,
                api_calls = r.api_calls,
                throttled = r.throttled,
                elapsed_ms = r.elapsed.as_millis() as u64,
                outcome = r.outcome.as_str(),
                "{r}"
            )
        };
    }
    if eventful {
        event!(tracing::Level::INFO);
    } else {
        event!(tracing::Level::DEBUG);
    }
}

/// The API that moved the tenant's cursor last, if any.
async fn owner(store: &Arc<Mutex<Store>>, tenant: &str) -> Result<Option<SourceKind>, StoreError> {
    let (store, tenant) = (store.clone(), tenant.to_owned());
    tokio::task::spawn_blocking(move || {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        Ok(s.cursor_owner(&tenant)?
            .and_then(|(api, _)| SourceKind::parse(&api)))
    })
    .await
    .expect("store task panicked")
}

/// Records `decision` for `status` when it differs from what the store holds, and logs a move;
/// returns whether it wrote.
async fn record(
    store: &Arc<Mutex<Store>>,
    tenant: &TenantEnv,
    decision: &Decision,
) -> Result<bool, StoreError> {
    let name = tenant.cfg.name.clone();
    let (api, reason, detail) = (
        decision.api.as_str(),
        decision.why.code(),
        decision.why.to_string(),
    );
    let store = store.clone();
    let (previous, wrote) = tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.api_choice(&name)?;
        let wrote = s.record_api_choice(&name, api, reason, &detail)?;
        Ok::<_, StoreError>((before, wrote))
    })
    .await
    .expect("store task panicked")?;
    let moved = previous.as_ref().is_some_and(|p| p.api != api);
    // A first choice is said once; not a pinned one (the config says it) nor one made while the
    // app cannot sign in (the poll's error says that, with its fix).
    let chosen = !matches!(decision.why, Why::Pinned | Why::SignInFailed(_));
    if moved || (previous.is_none() && chosen) {
        tracing::info!(
            tenant = %tenant.cfg.name,
            api = decision.api.title(),
            why = %decision.why,
            "The tenant reads {} ({}).",
            decision.api.title(),
            decision.why
        );
    }
    Ok(wrote)
}

#[cfg(test)]
pub(crate) mod log_capture {
    //! The JSON lines a piece of code logs at INFO and above, as `[log] format = "json"` writes
    //! them: for tests of what a quiet service says.

    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` and returns what it logged at INFO and above, one JSON value a line.
    pub(crate) fn info_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Counts, Outcome};
    use std::time::Duration;

    fn report(new: u64, throttled: u64) -> PollReport {
        PollReport {
            tenant: "contoso".into(),
            counts: Counts {
                new,
                unchanged: 3,
                ..Counts::default()
            },
            api_calls: 1,
            cursor_after: None,
            elapsed: Duration::from_millis(120),
            mode: crate::poll::Mode::Keyset,
            outcome: Outcome::Ok,
            resume_from: None,
            future: 0,
            throttled,
            waited: Duration::ZERO,
            quirks: Vec::new(),
            stuck: None,
        }
    }

    /// A quiet poll is said at DEBUG only; one that stored alerts or was throttled at INFO, with
    /// its numbers as fields.
    #[test]
    fn only_a_poll_that_did_something_is_logged_at_info() {
        assert!(log_capture::info_lines(|| log_finished(&report(0, 0))).is_empty());
        let lines = log_capture::info_lines(|| log_finished(&report(2, 0)));
        assert_eq!(lines.len(), 1);
        let f = &lines[0]["fields"];
        assert_eq!(f["tenant"], "contoso");
        assert_eq!(f["new"], 2);
        assert_eq!(f["unchanged"], 3);
        assert_eq!(f["api_calls"], 1);
        assert_eq!(f["elapsed_ms"], 120);
        assert_eq!(f["outcome"], "ok");
        assert_eq!(
            log_capture::info_lines(|| log_finished(&report(0, 1))).len(),
            1
        );
    }
}
