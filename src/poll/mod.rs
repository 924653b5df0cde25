//! One poll of one tenant: plan → fetch → store, page by page, losing nothing while the API moves.
//!
//! # Why keyset paging
//!
//! Defender's result order is undocumented and alerts change while you page: an analyst resolves
//! one, an investigation updates fifty. A `$skip` pager over such a moving set silently skips rows
//! (everything after an updated alert shifts up by one), and a cursor that then jumps past them loses
//! them for good. So pages are asked for by *time*, oldest first:
//!
//! 1. The first page asks `lastUpdateTime ge S`, where `S` is the *settled watermark*: every alert
//!    updated at or before `S` was read at least `overlap` after its update, so an alert that
//!    becomes visible late (ingestion delay, up to `overlap`) can no longer appear below it. A page
//!    read at wall time `w` settles up to `min(its last time, w₀ − overlap)`, `w₀` being when the
//!    poll began (minus a minute for clock skew); a poll that read to the end settles up to
//!    `w₀ − overlap`. Stores from before the watermark start at `cursor − overlap`; a first run at
//!    `now − initial_lookback`, at most 180 days. Because `S` is committed with each page, a poll
//!    cut short at its deadline *resumes* where it stopped: it never re-reads the same overlap for
//!    ever when that overlap holds more than one poll can read.
//! 2. Each next page asks `lastUpdateTime ge T`, where `T` is the largest time on the page just read.
//!    Alerts at exactly `T` come again and are deduplicated by the store. An alert updated mid-poll
//!    moves to the end of the order and is read later in this poll or in the next one; nothing can
//!    shift past the pager, because the pager holds no position, only a time.
//! 3. When a full page holds a single instant (more alerts share one `lastUpdateTime` than fit on a
//!    page), the instant is read by `alertCreationTime` windows that together cover every value a
//!    server can hold (open-ended at both ends, plus `null`), halved while full; a window that
//!    cannot be split is read with `$skip` until a pass finds no alert the pass before missed. Then
//!    the pager continues with `gt T`.
//! 4. Each page is committed in one SQLite transaction together with the cursor advance to its `T`
//!    (never past this machine's clock: an alert dated in the future is stored, reported once, and
//!    does not carry the cursor with it): every alert older than the cursor is stored, so a crash at
//!    any instant resumes without a gap.
//! 5. A short page ends the poll; a quiet poll therefore costs exactly one call.
//!
//! The code follows the same jobs: `pager` plans the reads, `page` makes one call and checks
//! what its page proves, `commit` stores a page with its cursor.
//!
//! # What Graph does not document, and the fallback for each
//!
//! Graph documents `$filter` (`eq ne gt ge lt le` on the time fields, `serviceSource`, …), `$top`,
//! `$skip` (at most 500), `$count` and `@odata.nextLink` for `alerts_v2`. Everything else the
//! pager sends is optional: refused or ignored, it costs calls, never an alert, and never stops a
//! tenant. Each departure is said once per poll (one WARN, and [`PollReport::quirks`]).
//!
//! - `$orderby` is undocumented. Every page's order is checked; refused (400) or ignored, the pager
//!   reads bounded windows, `ge A and lt B`, halved while a window fills a page, with the same
//!   cursor guarantee.
//! - `createdDateTime eq null` is undocumented. Graph's schema declares `createdDateTime`
//!   `Edm.DateTimeOffset` without `Nullable="false"`, so a null cannot be ruled out from the
//!   schema, though every real payload carries it. When the clause is refused, the creation
//!   windows cannot cover an alert without a creation time, so the instant is read whole, without
//!   any creation clause, by `$skip` and nextLink passes until two passes agree: the same proof as
//!   for a window that cannot be split, using only documented features. It costs calls only on
//!   that server, and only for an instant shared by more alerts than a page. (`$count` could prove
//!   there are no nulls only in a world that stands still; alerts leave an instant while it is
//!   read.)
//! - `$skip` stops at 500: past it the server's own nextLink is followed. A full page without a
//!   link past 500 is the end of its pass (an instant of exactly a multiple of the page size); a
//!   link the pager cannot follow (another host) fails the poll, said. A link seen twice in one
//!   pass loops: `$skip` goes on where it may, else the pass ends.
//! - The filter and `serviceSource` are checked on what comes back. Alerts outside the asked
//!   window are dropped and every later request is read to its end instead of narrowed (its
//!   order and size no longer say anything); another product's alerts are never stored.
//! - A page larger than `$top` is cut to `$top` (so that `$skip` and the order check keep their
//!   meaning); a page capped below `$top` without a nextLink is caught by one probe, the same
//!   request past what the page held, made only when the page brought alerts newer than the
//!   cursor on a server not yet seen to send a full page: a quiet poll re-reads only old alerts,
//!   and still costs one call.
//! - A server `Date` more than a day from this machine's clock, or older than the alerts it sent,
//!   is not followed: the settled watermark would otherwise stay behind and every quiet poll would
//!   re-read the whole lookback.
//!
//! # A poll always ends, and says how
//!
//! Every call checks the deadline (the next scheduled poll), not only every wait, and a poll makes
//! at most `MAX_CALLS_PER_POLL` calls: with budget to spare, a server that never lets the pager
//! finish still cannot keep a poll going. A poll stopped there is `Partial` (the next resumes from
//! what was committed) or `Stalled` when it moved nothing; one that stopped inside an instant it
//! could not get past is `Stalled` whatever else it did, with where it stopped as its error.

mod commit;
mod page;
mod pager;

use page::MAX_CALLS_PER_POLL;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alert::time::ApiTime;
use crate::config::MAX_LOOKBACK;
use crate::source::{AlertSource, SourceError};
use crate::store::{Counts, Outcome, QuietPoll, RunFigures, Store, StoreError};
use pager::Pager;

/// The settings a poll needs.
#[derive(Debug, Clone, Copy)]
pub struct PollSettings {
    /// How far before the cursor to start.
    pub overlap: Duration,
    /// How far back a first poll reaches.
    pub initial_lookback: Duration,
    /// `$top`.
    pub page_size: u32,
}

/// What a poll did.
#[derive(Debug, Clone)]
pub struct PollReport {
    /// The tenant.
    pub tenant: String,
    /// Upsert outcomes.
    pub counts: Counts,
    /// API calls, retries included.
    pub api_calls: u64,
    /// The cursor after.
    pub cursor_after: Option<ApiTime>,
    /// Wall time.
    pub(crate) elapsed: Duration,
    /// How the pager read.
    pub mode: Mode,
    /// `Ok`; `Partial` when it stopped at its deadline having moved the settled watermark (the next
    /// poll resumes there); `Stalled` when it stopped at its deadline without any progress.
    pub outcome: Outcome,
    /// Where the next poll starts (the settled watermark), when known.
    pub(crate) resume_from: Option<ApiTime>,
    /// Alerts stored (new or changed) whose `lastUpdateTime` is in the future by this machine's
    /// clock: kept, reported, and not followed by the cursor.
    pub future: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Time spent waiting for budget, `Retry-After` and backoffs.
    pub waited: Duration,
    /// What the server did beyond or against Graph's documented query surface, each handled.
    pub quirks: Vec<Quirk>,
    /// Why a poll that stopped without progress could not get further, when the pager knows.
    pub(crate) stuck: Option<String>,
}

/// Something a server did beyond or against what Graph documents for `alerts_v2` (`$filter` on
/// the time fields and `serviceSource`, `$top`, `$skip` up to 500, `@odata.nextLink`): each is
/// recognised, said once per poll, and handled without losing an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Quirk {
    /// 400 to `createdDateTime eq null` (undocumented).
    NullRefused,
    /// 400 to a `$skip` the pager needed.
    SkipRefused,
    /// The same `@odata.nextLink` twice in one pass.
    LoopingLink,
    /// Alerts outside the asked time or creation window.
    IgnoredFilter,
    /// Alerts of products the `serviceSource` clause left out.
    IgnoredService,
    /// More elements than `$top`.
    Oversize,
    /// Pages capped below `$top` without a nextLink.
    Capped,
    /// A `Date` header far from this machine's clock, or before the server's own alerts.
    FarDate,
}

impl std::fmt::Display for Quirk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quirk::NullRefused => "The API refused the null comparison on createdDateTime (not in Graph's documented filter); instants shared by more alerts than a page are read whole with $skip and @odata.nextLink instead (more calls, nothing lost).",
            Quirk::SkipRefused => "The API refused a $skip the pager needed and sent no @odata.nextLink to go on with; that pass ends where the server stopped answering.",
            Quirk::LoopingLink => "The API sent the same @odata.nextLink again (it would return the same page for ever); the pager goes on with $skip where it may, else ends the pass.",
            Quirk::IgnoredFilter => "The API sent alerts outside the asked time window ($filter not honoured); they are dropped from that page and the pager reads each request to its end instead of narrowing it (more calls, nothing lost).",
            Quirk::IgnoredService => "The API sent alerts of Defender products the serviceSource clause leaves out; they are not stored.",
            Quirk::Oversize => "The API sent more alerts than $top on one page; the page is cut to $top and the rest read on the next page.",
            Quirk::Capped => "The API caps its pages below $top without an @odata.nextLink; pages of that size are taken as full from now on in this poll (more calls, nothing lost).",
            Quirk::FarDate => "The API's Date header is far from this machine's clock (or older than the alerts it sent); it is not followed: the settled watermark follows this machine's clock. Check the server's or this machine's clock.",
        })
    }
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "{}: {} new, {} updated, {} unchanged, {} stale, {} invalid; {} API call{}{} in {:.1}s; cursor {}",
            self.tenant,
            c.new,
            c.updated,
            c.unchanged,
            c.stale,
            c.invalid,
            self.api_calls,
            if self.api_calls == 1 { "" } else { "s" },
            match (self.throttled, self.waited.as_secs()) {
                (0, 0) => String::new(),
                (0, w) => format!(" (waited {w}s for budget)"),
                (t, w) => format!(" ({t} throttled, waited {w}s)"),
            },
            self.elapsed.as_secs_f64(),
            self.cursor_after
                .map(|t| t.to_api_string())
                .unwrap_or_else(|| "(none yet)".into())
        )?;
        match self.mode {
            Mode::Keyset => {}
            Mode::Windows(why) => write!(f, " (window paging: {why})")?,
        }
        if !self.quirks.is_empty() {
            write!(
                f,
                "; the API {} (see the warnings in the log)",
                quirk_names(&self.quirks)
            )?;
        }
        if self.future > 0 {
            write!(
                f,
                "; {} alert{} dated in the future (stored; the cursor does not follow them)",
                self.future,
                if self.future == 1 { "" } else { "s" }
            )?;
        }
        let resume = self
            .resume_from
            .map(|t| t.to_api_string())
            .unwrap_or_else(|| "the start".into());
        match self.outcome {
            Outcome::Partial => write!(
                f,
                "; stopped at the deadline (the next scheduled poll); the next poll resumes from {resume}"
            )?,
            Outcome::Stalled => match &self.stuck {
                Some(why) => write!(
                    f,
                    "; stopped WITHOUT PROGRESS ({why}): the next poll starts again from {resume}"
                )?,
                None => write!(
                    f,
                    "; stopped at the deadline WITHOUT PROGRESS: the next poll starts again from {resume} (raise page_size or the API budget, or poll less often)"
                )?,
            },
            _ => {}
        }
        Ok(())
    }
}

/// Why a poll failed. Everything committed before the failure stays committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PollError {
    /// The API or sign-in failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The API broke an assumption the pager relies on.
    #[error(transparent)]
    Protocol(#[from] Broken),
    /// The poll made as many calls as one poll may (`MAX_CALLS_PER_POLL`): it stops as
    /// at its deadline, and the next poll resumes from what was committed.
    #[error(
        "stopped after {calls} API calls, the most one poll makes; the next poll resumes from what was stored"
    )]
    CallLimit {
        /// Calls made by this poll.
        calls: u64,
    },
    /// The API an auto tenant reads refused it, and the other cannot be read either.
    #[error("{refusal}; the tenant (source = \"auto\") cannot move to Microsoft Graph: {why}")]
    NoApi {
        /// The refusal of the API it read.
        refusal: Box<SourceError>,
        /// Why Graph is not read.
        why: String,
        /// The fix for that cause (a missing grant, a proxy, a URL).
        fix: Option<String>,
    },
    /// The poll panicked (a bug), with the panic's message: that tenant's failure alone.
    #[error("the poll panicked (a bug in mde-alerts; please report it with the log): {0}")]
    Panicked(String),
}

/// How an API broke an assumption the pager relies on; the run fails without moving the cursor,
/// and the next poll tries again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Broken {
    /// A full page held no valid alert, so no time on it can move the pager on.
    #[error(
        "a full page of {received} elements had no valid alert; the pager cannot advance past it"
    )]
    NoValidAlert {
        /// Elements on the page.
        received: usize,
    },
    /// Past the `$skip` limit, the server sent no continuation the pager may follow.
    #[error(
        "more alerts match {read} than the API lets a client page through ($skip at most {max_skip}), and it sent no usable @odata.nextLink; will try again next poll"
    )]
    NoContinuation {
        /// The read, described.
        read: String,
        /// The API's `$skip` limit.
        max_skip: u32,
    },
    /// The alerts of one read kept changing between passes.
    #[error(
        "the alerts of one read ({read}) kept changing over {passes} passes; will try again next poll"
    )]
    KeptChanging {
        /// The read, described.
        read: String,
        /// Passes made.
        passes: u32,
    },
}

impl PollError {
    /// What the admin can do about it, when there is something to do: printed once, as
    /// `fix: …`, after the error, and kept in the run's row for `status`.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            PollError::Source(e) => e.hint(),
            PollError::Store(e) => e.hint(),
            PollError::NoApi { fix, .. } => fix.clone(),
            // The next poll resumes; a protocol break or a panic is ours to fix, and its message
            // says to report it.
            PollError::Protocol(Broken::NoContinuation { .. }) => Some(
                "if graph_url points at a proxy or private endpoint, make it pass Graph's @odata.nextLink on with its own host, so that the link leads back through it".into(),
            ),
            PollError::Protocol(_) | PollError::CallLimit { .. } | PollError::Panicked(_) => None,
        }
    }
}

/// The text of a task's panic (or why it ended without a result).
pub(crate) fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
        Err(join) => join.to_string(),
    }
}

/// Whether `now` (a [`AlertSource::services`] text) reads products `covered` did not.
fn widens(covered: &str, now: &str) -> bool {
    if covered == "all" {
        return false;
    }
    now == "all" || now.split(',').any(|s| !covered.split(',').any(|c| c == s))
}

/// Polls one tenant. The store is shared behind a mutex and only touched from blocking threads.
/// A poll makes at most `MAX_CALLS_PER_POLL` calls.
pub async fn poll_tenant<S: AlertSource>(
    source: &S,
    store: &Arc<Mutex<Store>>,
    tenant: &str,
    settings: PollSettings,
) -> Result<PollReport, PollError> {
    poll_tenant_within(source, store, tenant, settings, MAX_CALLS_PER_POLL).await
}

/// [`poll_tenant`] with another cap on calls: a poll stops after `max_calls` calls as at its
/// deadline (`Partial`, or `Stalled` without progress).
async fn poll_tenant_within<S: AlertSource>(
    source: &S,
    store: &Arc<Mutex<Store>>,
    tenant: &str,
    settings: PollSettings,
    max_calls: u64,
) -> Result<PollReport, PollError> {
    let started = Instant::now();
    let calls_before = source.calls();
    // Nothing is written before the API has said something worth keeping: a quiet poll writes
    // nothing of its own (see `store::quiet`).
    let (cursor_before, settled_before, owner_before, readback_before) = blocking(store, {
        let tenant = tenant.to_owned();
        move |s| {
            s.poll_begun(&tenant)?;
            Ok((
                s.cursor(&tenant)?,
                s.settled(&tenant)?,
                s.cursor_owner(&tenant)?,
                s.readback(&tenant)?,
            ))
        }
    })
    .await?;
    let now = ApiTime::now();
    let mut pager = Pager {
        mode: Mode::Keyset,
        source,
        store,
        tenant,
        run: None,
        deferred_calls: Vec::new(),
        top: settings.page_size,
        calls_before,
        counts: Counts::default(),
        pages: 0,
        settles_at: now.minus(settings.overlap).minus(page::CLOCK_SKEW),
        future: 0,
        overlap: settings.overlap,
        cursor_start: cursor_before,
        cap: None,
        seen_full: false,
        null_refused: false,
        filter_ignored: false,
        quirks: Vec::new(),
        inside: None,
        max_calls,
        readback_start: None,
        reading_back: false,
    };
    let start = match (settled_before, cursor_before) {
        (Some(s), _) => s,
        (None, Some(c)) => c.minus(settings.overlap),
        (None, None) => now.minus(settings.initial_lookback),
    };
    // A tenant switched to the other API (MDE → Graph) keeps its cursor, less one overlap: the
    // two APIs need not make an alert visible at the same moment, and re-reading costs only
    // `Unchanged` rows (the same alert under Graph is one more revision of the same row).
    let services = source.services();
    // A change of what is read starts a read-back, recorded with the new owner in one transaction
    // so that an interrupted one resumes (`readback`) rather than being forgotten.
    let readback_from = match (&owner_before, cursor_before) {
        // The cursor covers only the products it was moved for: products added to `services` (or
        // brought in by the switch to Graph) are read back as on a first poll; so is everything
        // when switching back to the MDE API, since Graph leaves out tuned and standalone alerts.
        (Some((api, covered)), Some(_))
            if widens(covered, &services) || (api != source.name() && source.name() == "mde") =>
        {
            tracing::info!(
                tenant,
                from = %format!("{api} ({covered})"),
                to = %format!("{} ({services})", source.name()),
                "The tenant now reads alerts its cursor did not cover; this poll reads back initial_lookback."
            );
            Some(now.minus(settings.initial_lookback))
        }
        // Graph need not make an alert visible when the MDE API does: re-read one overlap.
        (Some((api, _)), Some(c)) if api != source.name() => {
            tracing::info!(
                tenant,
                from = %api,
                to = source.name(),
                "The tenant switched APIs; this poll re-reads one overlap before the cursor."
            );
            Some(c.minus(settings.overlap))
        }
        _ => None,
    };
    // Recorded with the first page the new API answers, in its transaction: an attempt the API
    // refuses (an auto tenant then reads the other API) leaves the cursor's owner as it was, so
    // going back costs no read-back.
    pager.readback_start = readback_from;
    let readback = match (readback_before, readback_from) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    pager.reading_back = readback.is_some();
    let start = readback
        .map_or(start, |r| r.min(start))
        .max(now.minus(MAX_LOOKBACK));
    let result = pager.run(start).await;
    let (counts, pages, mode, future) = (pager.counts, pager.pages, pager.mode, pager.future);
    let figures = RunFigures {
        api_calls: source.calls() - calls_before,
        throttled: source.throttled(),
        waited: source.waited(),
    };
    let unsaved = source.take_unsaved_calls();
    let settles_at = pager.settles_at;
    let quirks = std::mem::take(&mut pager.quirks);
    // Why a poll that stops early could not get further: the instant it was inside (it read
    // there without getting past it, which is never healthy), or the cap on calls.
    let stuck = match (&result, pager.inside) {
        (Err(e), Some(t)) if stopped(e) => Some(format!(
            "it {} inside the instant {t}, which more alerts share than fit on a page, without getting past it{}",
            if matches!(e, PollError::CallLimit { .. }) {
                "reached the most calls one poll makes"
            } else {
                "reached its deadline"
            },
            if quirks.is_empty() {
                String::new()
            } else {
                format!("; the API: {}", quirk_names(&quirks))
            }
        )),
        (Err(e @ PollError::CallLimit { .. }), None) => Some(format!(
            "{e}{}",
            if quirks.is_empty() {
                String::new()
            } else {
                format!("; the API: {}", quirk_names(&quirks))
            }
        )),
        _ => None,
    };
    let run = pager.run;
    let deferred = std::mem::take(&mut pager.deferred_calls);
    let finished = blocking(store, {
        let tenant = tenant.to_owned();
        let stuck_at_instant = pager.inside.is_some();
        let (result_kind, error, fix) = match &result {
            Ok(()) => (Outcome::Ok, None, None),
            Err(e) if stopped(e) && stuck_at_instant => (Outcome::Stalled, stuck.clone(), None),
            Err(e) if stopped(e) => (Outcome::Partial, None, None),
            Err(e) => (Outcome::Failed, Some(e.to_string()), e.hint()),
        };
        let stuck = stuck.clone();
        move |s| {
            let mut calls = deferred;
            calls.extend(unsaved);
            // Read to the end without writing anything, and nothing to finish: a quiet poll,
            // kept in memory with the tenant's quiet streak.
            if run.is_none()
                && result_kind == Outcome::Ok
                && figures.throttled == 0
                && readback_before.is_none()
            {
                let cursor = s.cursor(&tenant)?;
                s.quiet_poll(
                    &tenant,
                    QuietPoll {
                        api_calls: figures.api_calls,
                        pages,
                        unchanged: counts.unchanged,
                        waited: figures.waited,
                        calls,
                        settled: cursor.map(|c| settles_at.min(c)),
                    },
                )?;
                return Ok((Outcome::Ok, cursor, s.settled(&tenant)?));
            }
            let mut w = s.poll_writer(&tenant)?;
            // A poll that wrote nothing before it failed, stopped or was throttled still has its row.
            let begun_late = run.is_none();
            let run = w.poll_run(&tenant, run)?;
            if begun_late {
                w.add_unchanged(counts.unchanged);
            }
            w.record_calls(&tenant, &calls)?;
            if result_kind == Outcome::Ok {
                // Read to the end: everything updated before the poll began (less the overlap)
                // has been seen, whatever the last alert's time. Never past the cursor: the
                // watermark does not pass what the server's own timestamps proved.
                if let Some(c) = w.cursor(&tenant)? {
                    w.advance_settled(&tenant, settles_at.min(c))?;
                }
                w.finish_readback(&tenant)?;
            }
            let wrote = w.wrote_streak();
            w.commit(begun_late.then_some(run), figures.api_calls)?;
            if wrote {
                s.quiet_written(&tenant);
            }
            let settled_after = s.settled(&tenant)?;
            let readback_after = s.readback(&tenant)?;
            let outcome = match result_kind {
                Outcome::Partial
                    if settled_after <= settled_before
                        && s.cursor(&tenant)? <= cursor_before
                        && readback_after <= readback =>
                {
                    Outcome::Stalled
                }
                o => o,
            };
            let error = match outcome {
                Outcome::Stalled => error.or(stuck),
                _ => error,
            };
            s.finish_run(run, outcome, figures, error.as_deref(), fix.as_deref())?;
            s.poll_ended(&tenant);
            Ok((outcome, s.cursor(&tenant)?, settled_after))
        }
    })
    .await;
    let (outcome, cursor_after, resume_from) = match finished {
        Ok(f) => f,
        Err(e) => return Err(result.err().unwrap_or(PollError::Store(e))),
    };
    match (result, outcome) {
        (Err(e), Outcome::Failed) => Err(e),
        (_, outcome) => Ok(PollReport {
            tenant: tenant.to_owned(),
            counts,
            api_calls: figures.api_calls,
            cursor_after,
            elapsed: started.elapsed(),
            mode,
            outcome,
            resume_from,
            future,
            throttled: figures.throttled,
            waited: figures.waited,
            quirks,
            stuck: (outcome == Outcome::Stalled).then_some(stuck).flatten(),
        }),
    }
}

/// Whether a poll stopped at one of its limits (its deadline, or the most calls one poll makes)
/// rather than failing: what it committed stands, and the next poll resumes from it.
fn stopped(e: &PollError) -> bool {
    matches!(
        e,
        PollError::Source(SourceError::Deadline { .. }) | PollError::CallLimit { .. }
    )
}

/// The quirks of a poll in a few words each, for the one line of a stalled poll.
fn quirk_names(quirks: &[Quirk]) -> String {
    quirks
        .iter()
        .map(|q| match q {
            Quirk::NullRefused => "refused the null comparison",
            Quirk::SkipRefused => "refused $skip",
            Quirk::LoopingLink => "repeated its nextLink",
            Quirk::IgnoredFilter => "ignored $filter",
            Quirk::IgnoredService => "ignored serviceSource",
            Quirk::Oversize => "sent more than $top",
            Quirk::Capped => "capped pages below $top",
            Quirk::FarDate => "sent a Date far off",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the pager reads: by keyset (the normal case), or by bounded windows when the API refuses
/// or ignores `$orderby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ge T` pages in time order.
    Keyset,
    /// `ge A and lt B` windows, split while full.
    Windows(WhyWindows),
}

/// Why the pager fell back to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhyWindows {
    /// The API answered 400 to `$orderby`.
    Refused,
    /// The API accepted `$orderby` but sent a page out of time order.
    Ignored,
}

impl std::fmt::Display for WhyWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WhyWindows::Refused => "the API refused $orderby",
            WhyWindows::Ignored => "the API ignored $orderby and sent pages out of time order",
        })
    }
}

/// Runs `f` on the store from a blocking thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    })
    .await
    .expect("store task panicked")
}

#[cfg(test)]
mod widen_tests {
    use super::widens;

    #[test]
    fn more_products_widen_the_scope_fewer_do_not() {
        let e = "microsoftDefenderForEndpoint";
        assert!(!widens(e, e));
        assert!(widens(e, "all"));
        assert!(!widens("all", e));
        assert!(!widens("all", "all"));
        assert!(widens(
            e,
            "microsoftDefenderForEndpoint,microsoftDefenderForOffice365"
        ));
        assert!(!widens(
            "microsoftDefenderForEndpoint,microsoftDefenderForOffice365",
            e
        ));
    }
}

#[cfg(test)]
mod graph_servers_tests;
#[cfg(test)]
mod tests;
