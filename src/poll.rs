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
//! Keyset paging needs `$orderby`, which Microsoft does not document for alerts. The pager checks
//! that each page really is in ascending order; if the server refuses `$orderby` (400) or ignores
//! it (an unsorted page), it falls back to bounded windows, `ge A and lt B`, split in halves while
//! a window fills a page, with the same cursor guarantee at the cost of more calls.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alert::time::ApiTime;
use crate::config::MAX_LOOKBACK;
use crate::source::{AlertSource, Bound, Created, NextLink, Page, PageRequest, SourceError};
use crate::store::{Counts, Outcome, RunFigures, RunId, Store, StoreError, Upsert};

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
    /// Pages committed.
    pub pages: u64,
    /// API calls, retries included.
    pub api_calls: u64,
    /// The cursor before the poll.
    pub cursor_before: Option<ApiTime>,
    /// The cursor after.
    pub cursor_after: Option<ApiTime>,
    /// Wall time.
    pub elapsed: Duration,
    /// The run's id in the store.
    pub run: RunId,
    /// How the pager read.
    pub mode: Mode,
    /// `Ok`; `Partial` when it stopped at its deadline having moved the settled watermark (the next
    /// poll resumes there); `Stalled` when it stopped at its deadline without any progress.
    pub outcome: Outcome,
    /// Where the next poll starts (the settled watermark), when known.
    pub resume_from: Option<ApiTime>,
    /// Alerts stored (new or changed) whose `lastUpdateTime` is in the future by this machine's
    /// clock: kept, reported, and not followed by the cursor.
    pub future: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Time spent waiting for budget, `Retry-After` and backoffs.
    pub waited: Duration,
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
            Outcome::Stalled => write!(
                f,
                "; stopped at the deadline WITHOUT PROGRESS: the next poll starts again from {resume} (raise page_size or the API budget, or poll less often)"
            )?,
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
    #[error("{0}")]
    Protocol(String),
    /// The API an auto tenant reads refused it, and the other cannot be read either.
    #[error("{refusal}; the tenant (source = \"auto\") cannot move to Microsoft Graph: {why}")]
    NoApi {
        /// The refusal of the API it read.
        refusal: SourceError,
        /// Why Graph is not read, with the fix for that cause (a missing grant, a proxy, a URL).
        why: String,
    },
    /// The poll panicked (a bug), with the panic's message: that tenant's failure alone.
    #[error("the poll panicked (a bug in mde-alerts; please report it with the log): {0}")]
    Panicked(String),
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

/// The most passes over one instant before giving up (alerts at it keep changing).
const MAX_TIE_PASSES: u32 = 8;

/// Whether `now` (a [`AlertSource::services`] text) reads products `covered` did not.
fn widens(covered: &str, now: &str) -> bool {
    if covered == "all" {
        return false;
    }
    now == "all" || now.split(',').any(|s| !covered.split(',').any(|c| c == s))
}

/// Polls one tenant. The store is shared behind a mutex and only touched from blocking threads.
pub async fn poll_tenant<S: AlertSource>(
    source: &S,
    store: &Arc<Mutex<Store>>,
    tenant: &str,
    settings: PollSettings,
) -> Result<PollReport, PollError> {
    let started = Instant::now();
    let calls_before = source.calls();
    let (cursor_before, settled_before, owner_before, readback_before, run) = blocking(store, {
        let tenant = tenant.to_owned();
        move |s| {
            Ok((
                s.cursor(&tenant)?,
                s.settled(&tenant)?,
                s.cursor_owner(&tenant)?,
                s.readback(&tenant)?,
                s.begin_run(&tenant, "poll")?,
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
        run,
        top: settings.page_size,
        calls_before,
        counts: Counts::default(),
        pages: 0,
        settles_at: now.minus(settings.overlap).minus(CLOCK_SKEW),
        future: 0,
        overlap: settings.overlap,
        readback_start: None,
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
    let finished = blocking(store, {
        let tenant = tenant.to_owned();
        let (result_kind, error) = match &result {
            Ok(()) => (Outcome::Ok, None),
            Err(PollError::Source(SourceError::Deadline { .. })) => (Outcome::Partial, None),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        move |s| {
            let mut w = s.writer()?;
            w.record_calls(&tenant, &unsaved)?;
            if result_kind == Outcome::Ok {
                // Read to the end: everything updated before the poll began (less the overlap)
                // has been seen, whatever the last alert's time. Never past the cursor: the
                // watermark does not pass what the server's own timestamps proved.
                if let Some(c) = w.cursor(&tenant)? {
                    w.advance_settled(&tenant, settles_at.min(c))?;
                }
                w.finish_readback(&tenant)?;
            }
            w.commit(None, 0)?;
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
            s.finish_run(run, outcome, figures, error.as_deref())?;
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
            pages,
            api_calls: figures.api_calls,
            cursor_before,
            cursor_after,
            elapsed: started.elapsed(),
            run,
            mode,
            outcome,
            resume_from,
            future,
            throttled: figures.throttled,
            waited: figures.waited,
        }),
    }
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

struct Pager<'a, S> {
    mode: Mode,
    source: &'a S,
    store: &'a Arc<Mutex<Store>>,
    tenant: &'a str,
    run: RunId,
    top: u32,
    calls_before: u64,
    counts: Counts,
    pages: u64,
    /// How far a page settles at most: the poll's start, less the overlap and the clock skew.
    settles_at: ApiTime,
    /// Alerts stored (new or changed) dated in the future.
    future: u64,
    /// The overlap, for lowering `settles_at` to the server's clock.
    overlap: Duration,
    /// A read-back to record with the first commit (see [`poll_tenant`]).
    readback_start: Option<ApiTime>,
}

impl<S: AlertSource> Pager<'_, S> {
    async fn run(&mut self, start: ApiTime) -> Result<(), PollError> {
        tracing::debug!(tenant = self.tenant, from = %start, "Polling.");
        let mut bound = Bound::AtOrAfter(start);
        let mut first = true;
        loop {
            let page = match self.fetch(bound, None, None, true, 0).await {
                Err(PollError::Source(SourceError::Refused { status: 400, .. })) if first => {
                    tracing::warn!(
                        tenant = self.tenant,
                        "The API refused $orderby; falling back to bounded time windows (more calls, same guarantees)."
                    );
                    self.mode = Mode::Windows(WhyWindows::Refused);
                    return self.windows(start).await;
                }
                other => other?,
            };
            first = false;
            let full = self.is_full(&page);
            let range = match time_range(&page) {
                // Too few alerts to tell whether the server sorted them: don't bet the cursor on it.
                Some(Range::Sorted(..)) if full && page.alerts.len() < 2 => Some(Range::Unsorted),
                r => r,
            };
            let (lo, hi) = match range {
                Some(Range::Sorted(lo, hi)) => (lo, hi),
                Some(Range::Unsorted) => return self.order_ignored(bound).await,
                None if full => {
                    return Err(PollError::Protocol(format!(
                        "a full page of {} elements had no valid alert; the pager cannot advance past it",
                        page.received
                    )));
                }
                None => {
                    self.commit(page, None).await?;
                    return Ok(());
                }
            };
            // A full page that merely *looks* sorted proves nothing: a server that ignores
            // `$orderby` can hand out alerts that happen to be in order (creation order, say)
            // while older ones wait on later pages, and keyset paging would then step over them
            // for good. So every full page proves it: everything before its last instant must
            // already be on it. One more call per full page; a short page (every quiet poll) is
            // complete whatever the order, and needs none.
            if full && hi > since(bound) {
                let check = self.fetch(bound, Some(hi), None, true, 0).await?;
                let on_page: HashSet<&str> = page.alerts.iter().map(|a| a.id.as_str()).collect();
                if self.is_full(&check)
                    || check
                        .alerts
                        .iter()
                        .any(|a| !on_page.contains(a.id.as_str()))
                {
                    return self.order_ignored(bound).await;
                }
            }
            if full && lo == hi {
                self.commit(page, Some(hi)).await?;
                self.read_instant(hi, true).await?;
                bound = Bound::After(hi);
                continue;
            }
            self.commit(page, Some(hi)).await?;
            if !full {
                return Ok(());
            }
            bound = Bound::AtOrAfter(hi);
        }
    }

    /// The server sent pages out of time order (or a page that only looked sorted): nothing from
    /// the page is trusted, and the windows pager starts again from the same bound.
    async fn order_ignored(&mut self, bound: Bound) -> Result<(), PollError> {
        tracing::warn!(
            tenant = self.tenant,
            "The API ignored $orderby (its pages are not in time order); falling back to bounded time windows."
        );
        self.mode = Mode::Windows(WhyWindows::Ignored);
        let from = match bound {
            Bound::AtOrAfter(t) | Bound::Exactly(t) => t,
            Bound::After(t) => t.plus(TICK),
        };
        self.windows(from).await
    }

    /// The fallback when `$orderby` is refused or ignored: read `[lo, hi)` windows in ascending
    /// order. A window that fills a page is split in halves (its page is not trusted); a window of
    /// one instant is read with `$skip`. The cursor moves to the latest time of each complete
    /// window, so every alert older than it is stored, exactly as in keyset mode.
    async fn windows(&mut self, from: ApiTime) -> Result<(), PollError> {
        let mut stack: Vec<(ApiTime, Option<ApiTime>)> = vec![(from, None)];
        while let Some((lo, hi)) = stack.pop() {
            let page = self.fetch(Bound::AtOrAfter(lo), hi, None, false, 0).await?;
            let latest = page.alerts.iter().map(|a| a.last_update).max();
            if !self.is_full(&page) {
                self.commit(page, latest).await?;
                continue;
            }
            let end = match hi {
                Some(h) => h,
                None => ApiTime::now().max(latest.unwrap_or(lo)).plus(TICK),
            };
            if end.ticks() - lo.ticks() <= 1 {
                // A single instant holds more alerts than a page.
                self.commit(page, Some(lo)).await?;
                self.read_instant(lo, false).await?;
                continue;
            }
            let mid = ApiTime::from_ticks(lo.ticks() + (end.ticks() - lo.ticks()) / 2);
            // Upper half later, lower half first: windows complete in ascending order.
            stack.push((mid, hi));
            stack.push((lo, Some(mid)));
        }
        Ok(())
    }

    /// Reads every alert at instant `t` when more share it than fit on a page.
    ///
    /// `$skip` alone is not safe here: alerts leave the instant while we page (an investigation is
    /// still updating the batch), every later alert shifts up, and one can slip past the pager in
    /// every pass. So the instant is split by `alertCreationTime`, which never changes: an alert can
    /// leave a creation window but never shift into one already read. A window that still fills a
    /// page is halved; one that cannot be split (alerts created in the same tick, or with no
    /// creation time) falls back to `$skip` passes, until two passes in a row see the same alerts.
    async fn read_instant(&mut self, t: ApiTime, ordered: bool) -> Result<(), PollError> {
        tracing::info!(tenant = self.tenant, instant = %t, "More alerts share one lastUpdateTime than fit on a page; reading the instant by creation time.");
        let retention = t.minus(MAX_LOOKBACK).minus(Duration::from_secs(86_400));
        // The windows cover every value the server can hold: open below (.NET's 0001-01-01
        // sentinel, anything before retention), the plausible span, open above (a creation time
        // after the update is a clock fault, but it happens), and null. Pops in order: missing,
        // old, recent, future.
        let mut stack = vec![
            Created::Within(Some(t.plus(TICK)), None),
            Created::Within(Some(retention), Some(t.plus(TICK))),
            Created::Within(None, Some(retention)),
            Created::Missing,
        ];
        while let Some(window) = stack.pop() {
            let page = self
                .fetch(Bound::Exactly(t), None, Some(window), ordered, 0)
                .await?;
            let full = self.is_full(&page);
            self.commit(page, Some(t)).await?;
            if !full {
                continue;
            }
            match split(window) {
                Some((lower, upper)) => {
                    stack.push(upper);
                    stack.push(lower);
                }
                None => self.skip_passes(t, window, ordered).await?,
            }
        }
        Ok(())
    }

    /// Reads one creation window of instant `t` with `$skip`, pass after pass, until a pass sees
    /// every alert of the pass before. An alert can only be skipped in a pass if another alert read
    /// in that pass left the instant during it; that one is then missing from the next pass. So when
    /// nothing is missing, the earlier pass skipped nothing. (Alerts that left are read later, at
    /// their new time.)
    async fn skip_passes(
        &mut self,
        t: ApiTime,
        window: Created,
        ordered: bool,
    ) -> Result<(), PollError> {
        let mut previous: Option<HashSet<String>> = None;
        let max_skip = self.source.max_skip();
        for _pass in 0..MAX_TIE_PASSES {
            let mut ids = HashSet::new();
            let mut skip = 0u32;
            let mut link: Option<NextLink> = None;
            loop {
                let page = match link.take() {
                    Some(l) => self.follow(&l).await?,
                    None => {
                        self.fetch(Bound::Exactly(t), None, Some(window), ordered, skip)
                            .await?
                    }
                };
                let full = self.is_full(&page);
                let next = page.next.clone();
                let received = page.received;
                ids.extend(page.alerts.iter().map(|a| a.id.clone()));
                self.commit(page, Some(t)).await?;
                if !full {
                    break;
                }
                // By what the page held, not by `$top`: a server that caps its pages below
                // `$top` (and says so with a nextLink) would otherwise be skipped past.
                skip = skip.saturating_add(u32::try_from(received).unwrap_or(u32::MAX));
                // Past the API's `$skip` limit (Graph: 500) the server's own continuation is
                // the only way on; it was checked to point at the configured API.
                if skip > max_skip {
                    link = Some(next.ok_or_else(|| {
                        PollError::Protocol(format!(
                            "more alerts share the instant {t} and one creation time than the API lets a client page through ($skip at most {max_skip}), and it sent no usable @odata.nextLink; will try again next poll"
                        ))
                    })?);
                }
            }
            if previous.as_ref().is_some_and(|p| p.is_subset(&ids)) {
                return Ok(());
            }
            previous = Some(ids);
        }
        Err(PollError::Protocol(format!(
            "the alerts at {t} kept changing over {MAX_TIE_PASSES} passes; will try again next poll"
        )))
    }

    /// A page is the last only when it is short and the server did not say there is more.
    fn is_full(&self, page: &Page) -> bool {
        page.received >= self.top as usize || page.more
    }

    async fn fetch(
        &mut self,
        bound: Bound,
        before: Option<ApiTime>,
        created: Option<Created>,
        ordered: bool,
        skip: u32,
    ) -> Result<Page, PollError> {
        let req = PageRequest {
            bound,
            before,
            created,
            ordered,
            top: self.top,
            skip,
        };
        let mut page = self.source.fetch(&req).await?;
        self.observe(&page);
        self.check_more(&req, &mut page).await?;
        Ok(page)
    }

    /// A page shorter than `$top` that says there is more: Graph sends a nextLink on its last page
    /// too (to an empty page), and a server may cap its pages below `$top`. Taken for full, the
    /// first would send the pager splitting windows down to single ticks on every poll; taken for
    /// the end, the second would lose the rest. One more call tells them apart: the link, when it
    /// is ours, or else the same request past what the page held. An empty page has nothing more.
    async fn check_more(&mut self, req: &PageRequest, page: &mut Page) -> Result<(), PollError> {
        if !page.more || page.received >= self.top as usize {
            return Ok(());
        }
        if page.received == 0 {
            page.more = false;
            return Ok(());
        }
        let past = u32::try_from(page.received)
            .ok()
            .and_then(|n| req.skip.checked_add(n))
            .filter(|s| *s <= self.source.max_skip());
        let probe = match (page.next.clone(), past) {
            (Some(link), _) => self.source.follow(&link).await?,
            (None, Some(skip)) => self.source.fetch(&PageRequest { skip, ..*req }).await?,
            // No way to look: taken for full, which is safe.
            (None, None) => return Ok(()),
        };
        self.observe(&probe);
        if probe.received == 0 {
            page.more = false;
            page.next = None;
        }
        Ok(())
    }

    /// What every page teaches besides its alerts: the server's clock, and its invalid elements.
    fn observe(&mut self, page: &Page) {
        // When this machine's clock runs ahead of the server's, the watermark follows the
        // server's: everything settled must have been read `overlap` after its update by the
        // clock that stamped it.
        if let Some(served) = page.served_at {
            self.settles_at = self
                .settles_at
                .min(served.minus(self.overlap).minus(CLOCK_SKEW));
        }
        for r in &page.rejected {
            tracing::warn!(
                tenant = self.tenant,
                index = r.index,
                error = %r.why,
                "An element of the page is not a valid alert: it is kept verbatim in the store (rejected_elements), and the rest of the page is stored as alerts."
            );
        }
    }

    /// The page behind a `nextLink`, handled as [`Pager::fetch`] handles a page.
    async fn follow(&mut self, link: &NextLink) -> Result<Page, PollError> {
        let page = self.source.follow(link).await?;
        self.observe(&page);
        Ok(page)
    }

    async fn commit(&mut self, page: Page, cursor: Option<ApiTime>) -> Result<(), PollError> {
        let tenant = self.tenant.to_owned();
        let run = self.run;
        let calls = self.source.calls() - self.calls_before;
        let made = self.source.take_unsaved_calls();
        let api = self.source.name();
        let services = self.source.services();
        // A timestamp from the future (a bad clock upstream) must not carry the cursor past alerts
        // still to come, nor shrink the next poll's overlap: the cursor never passes this
        // machine's clock. (Everything up to the page's last time is read, so `now` is proven.)
        let now = ApiTime::now();
        let cursor = cursor.map(|c| c.min(now));
        let settled = cursor.map(|c| c.min(self.settles_at));
        let future_from = now.plus(FUTURE_SLACK);
        let readback = self.readback_start.take();
        let (counts, future) = blocking(self.store, move |s| {
            let mut w = s.writer()?;
            if let Some(from) = readback {
                w.start_readback(&tenant, from, (api, &services))?;
            }
            w.record_calls(&tenant, &made)?;
            let mut future = Vec::new();
            for a in &page.alerts {
                let u = w.upsert(&tenant, a)?;
                if a.last_update > future_from && matches!(u, Upsert::New | Upsert::Updated) {
                    future.push((a.id.clone(), a.last_update));
                }
            }
            for r in &page.rejected {
                w.reject(&tenant, &r.why.to_string(), &r.raw)?;
            }
            if let (Some(c), Some(st)) = (cursor, settled) {
                w.advance_cursor(&tenant, c, st, (api, &services))?;
                w.advance_readback(&tenant, st)?;
            }
            Ok((w.commit(Some(run), calls)?, future))
        })
        .await?;
        // Reported once per version: the same version read again is `Unchanged` and silent.
        for (id, at) in &future {
            tracing::warn!(
                tenant = self.tenant,
                alert = %id,
                last_update = %at,
                "An alert is dated in the future by this machine's clock; it is stored, but the cursor does not follow it. Check the clocks (this machine's NTP) if many are."
            );
        }
        self.future += future.len() as u64;
        self.counts.merge(counts);
        self.pages += 1;
        Ok(())
    }
}

/// How far ahead of this machine's clock an alert's time may be before it is reported as dated in
/// the future (ordinary clock skew between Microsoft and this machine stays quiet).
const FUTURE_SLACK: Duration = Duration::from_secs(300);

/// How far this machine's clock may be ahead of Microsoft's: subtracted from the settled watermark,
/// which is the one place the pager trusts this machine's clock against the API's timestamps.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The earliest and latest instants a creation window is split within: the OData literal range,
/// `0001-01-01T00:00:00Z` to `9999-12-31T23:59:59.9999999Z`. Open-ended windows stay open on
/// that side, so a value outside even this range is still covered.
const SPLIT_MIN: ApiTime = ApiTime::from_ticks(-621_355_968_000_000_000);
const SPLIT_MAX: ApiTime = ApiTime::from_ticks(2_534_023_007_999_999_999);

/// Halves a creation window, keeping open sides open, or `None` when it cannot be split (one
/// tick wide, or `null`).
fn split(window: Created) -> Option<(Created, Created)> {
    let Created::Within(a, b) = window else {
        return None;
    };
    let lo = a.unwrap_or(SPLIT_MIN).ticks();
    let hi = b.unwrap_or(SPLIT_MAX).ticks();
    if hi.saturating_sub(lo) <= 1 {
        return None;
    }
    let mid = ApiTime::from_ticks(lo + (hi - lo) / 2);
    Some((Created::Within(a, Some(mid)), Created::Within(Some(mid), b)))
}

/// One tick of the API's clock (100 ns).
const TICK: Duration = Duration::from_nanos(100);

/// The earliest time a bound admits (`gt T` admits nothing at `T` itself, which is what the
/// order check needs: "is anything between the bound and the page's last instant missing?").
fn since(bound: Bound) -> ApiTime {
    match bound {
        Bound::AtOrAfter(t) | Bound::Exactly(t) | Bound::After(t) => t,
    }
}

/// A page's time span.
enum Range {
    /// In ascending order, from the first to the last.
    Sorted(ApiTime, ApiTime),
    /// Not in time order: the server ignored `$orderby`.
    Unsorted,
}

/// The page's earliest and latest `lastUpdateTime`, and whether it is in ascending order.
fn time_range(page: &Page) -> Option<Range> {
    let first = page.alerts.first()?.last_update;
    let mut prev = first;
    for a in &page.alerts[1..] {
        if a.last_update < prev {
            return Some(Range::Unsorted);
        }
        prev = a.last_update;
    }
    Some(Range::Sorted(first, prev))
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
mod tests {
    use super::*;
    use crate::source::fake::{FakeAlert, FakeSource, OrderBy};
    use proptest::prelude::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    const SETTINGS: PollSettings = PollSettings {
        overlap: Duration::from_secs(600),
        initial_lookback: Duration::from_secs(30 * 86_400),
        page_size: 1,
    };

    /// The store's latest raw JSON per alert id.
    fn stored(store: &Store) -> std::collections::HashMap<String, String> {
        let mut out = std::collections::HashMap::new();
        store
            .for_each_alert(|_, raw| {
                let v: serde_json::Value = serde_json::from_str(raw).unwrap();
                let id = v["id"].as_str().unwrap().to_owned();
                assert!(out.insert(id, raw.to_owned()).is_none(), "stored twice");
                Ok(())
            })
            .unwrap();
        out
    }

    /// A change the world undergoes before one call.
    #[derive(Debug, Clone, Copy)]
    enum Move {
        /// `count` alerts are updated at one shared new instant.
        Update(usize, usize),
        /// `count` alerts are updated and become visible only three calls later.
        UpdateLate(usize, usize),
        /// `count` new alerts appear at one shared instant.
        Create(usize),
        /// Nothing.
        Rest,
    }

    fn moves() -> impl Strategy<Value = Move> {
        prop_oneof![
            (0usize..1_000, 1usize..30).prop_map(|(at, n)| Move::Update(at, n)),
            (0usize..1_000, 1usize..10).prop_map(|(at, n)| Move::UpdateLate(at, n)),
            (1usize..30).prop_map(Move::Create),
            Just(Move::Rest),
        ]
    }

    fn apply(m: Move, call: u64, world: &mut Vec<FakeAlert>) {
        // Updates carry a time a little in the past: "now" as Defender stamped it, or (late
        // ones) a time the alert is only made visible some calls after.
        let now = ApiTime::now().minus(Duration::from_secs(2));
        let mut touch = |at: usize, n: usize, hidden: u32| {
            if world.is_empty() {
                return;
            }
            let len = world.len();
            for k in 0..n.min(len) {
                let a = &mut world[(at + k * 7) % len];
                a.updated = a.updated.max(now);
                a.version += 1;
                a.hidden_for = hidden;
            }
        };
        match m {
            Move::Update(at, n) => touch(at, n, 0),
            Move::UpdateLate(at, n) => touch(at, n, 3),
            Move::Create(n) => {
                let base = world.len();
                for k in 0..n {
                    world.push(FakeAlert::new(
                        format!("new{call:04}-{:04}", base + k),
                        now,
                        Some(now.minus(Duration::from_secs(60))),
                    ));
                }
            }
            Move::Rest => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// The pager's model test: whatever the world does while a poll pages through it (alerts
        /// move, arrive, become visible late, crowd one instant, carry odd creation times) and
        /// whatever the server does with `$orderby`, one more poll of the settled world leaves the
        /// store holding every alert exactly once, in its latest state.
        #[test]
        fn the_pager_loses_nothing_while_the_world_moves(
            n in 0usize..160,
            instants in 1u64..8,
            page in 1u32..25,
            order in prop_oneof![
                Just(OrderBy::Sorted),
                Just(OrderBy::Refused),
                Just(OrderBy::Ignored),
                Just(OrderBy::ByCreation),
            ],
            script in proptest::collection::vec(moves(), 0..16),
            odd in 0u8..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
            let base = ApiTime::now().minus(Duration::from_secs(7_200));
            let world: Vec<FakeAlert> = (0..n)
                .map(|i| {
                    let created = match (odd, i % 4) {
                        (1, 0) => None,
                        (2, 0) => Some(ApiTime::parse("0001-01-01T00:00:00Z").unwrap()),
                        (3, 0) => Some(ApiTime::parse("9999-12-31T23:59:59Z").unwrap()),
                        _ => Some(base.minus(Duration::from_secs(i as u64))),
                    };
                    FakeAlert::new(
                        format!("a{i:04}"),
                        base.plus(Duration::from_secs(i as u64 % instants)),
                        created,
                    )
                })
                .collect();
            let source = FakeSource::new(world, order);
            let mut script = script.into_iter();
            source.set_mutator(Some(Box::new(move |call, w| {
                if let Some(m) = script.next() {
                    apply(m, call, w);
                }
            })));
            let settings = PollSettings { page_size: page, ..SETTINGS };
            // The first poll may give up on an instant that keeps changing; never silently.
            let first = block_on(poll_tenant(&source, &store, "t", settings));
            if let Err(e) = &first {
                prop_assert!(matches!(e, PollError::Protocol(_)), "{e}");
            }
            if let Ok(r) = &first {
                prop_assert!(r.cursor_after.is_none_or(|c| c <= ApiTime::now()));
            }
            source.set_mutator(None);
            source.with_world(|w| w.iter_mut().for_each(|a| a.hidden_for = 0));
            let second = block_on(poll_tenant(&source, &store, "t", settings));
            prop_assert!(second.is_ok(), "{:?}", second.err());
            let s = store.lock().unwrap();
            let got = stored(&s);
            let truth = source.truth();
            prop_assert_eq!(got.len(), truth.len());
            for a in &truth {
                prop_assert_eq!(got.get(&a.id), Some(&a.json()), "alert {} is missing or stale", a.id);
            }
        }
    }

    /// Found by the model test: a server that ignores `$orderby` answered a full first page that
    /// happened to look sorted (an old alert, then one just updated); keyset paging stepped from
    /// the new alert's time and never read the 143 older ones, and both polls said ok. The first
    /// full page of a poll is now checked.
    #[test]
    fn a_page_that_only_looks_sorted_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
        let base = ApiTime::now().minus(Duration::from_secs(7_200));
        let mut world: Vec<FakeAlert> = (0..145)
            .map(|i| {
                FakeAlert::new(
                    format!("a{i:04}"),
                    base,
                    Some(base.minus(Duration::from_secs(i))),
                )
            })
            .collect();
        // Reverse id order puts a0144 (old) before a0143 (just updated): it looks ascending.
        let now = ApiTime::now().minus(Duration::from_secs(2));
        for id in [136, 143] {
            world[id].updated = now;
            world[id].version += 1;
        }
        let source = FakeSource::new(world, OrderBy::Ignored);
        let settings = PollSettings {
            page_size: 2,
            ..SETTINGS
        };
        let r = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
        assert_eq!(r.mode, Mode::Windows(WhyWindows::Ignored));
        assert_eq!(stored(&store.lock().unwrap()).len(), 145);
    }

    /// A server that sorts pays one extra call per full page for the proof; a quiet poll still
    /// costs one call.
    #[test]
    fn the_order_check_costs_one_call_per_full_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
        let base = ApiTime::now().minus(Duration::from_secs(7_200));
        let world: Vec<FakeAlert> = (0..100)
            .map(|i| {
                FakeAlert::new(
                    format!("a{i:04}"),
                    base.plus(Duration::from_secs(i)),
                    Some(base),
                )
            })
            .collect();
        let source = FakeSource::new(world, OrderBy::Sorted);
        let settings = PollSettings {
            page_size: 10,
            ..SETTINGS
        };
        let r = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
        assert_eq!(r.mode, Mode::Keyset);
        // 100 alerts, pages of 10 overlapping by one alert: 11 full pages and a short one, plus
        // one check per full page.
        assert_eq!(r.api_calls, 23, "{r}");
        let quiet = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
        assert_eq!(quiet.api_calls, 1, "a quiet poll costs one call: {quiet}");
    }

    /// Adversarial review: a server that ignores `$orderby` and answers in creation order sent
    /// pages that each looked sorted ([a1 a2], [a2 a3], [a3]); the pager jumped to a3's time and
    /// never read a4 and a5. Every full page now proves it holds everything before its last
    /// instant.
    #[test]
    fn creation_order_pages_that_look_sorted_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
        let base = ApiTime::now().minus(Duration::from_secs(7_200));
        let min = |m: u64| base.plus(Duration::from_secs(60 * m));
        let world = [(1, 1), (2, 2), (3, 10), (4, 4), (5, 5)]
            .into_iter()
            .map(|(c, u)| FakeAlert::new(format!("a{c}"), min(u), Some(min(c))))
            .collect();
        let source = FakeSource::new(world, OrderBy::ByCreation);
        let settings = PollSettings {
            page_size: 2,
            ..SETTINGS
        };
        let r = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
        assert_eq!(stored(&store.lock().unwrap()).len(), 5, "{r}");
        assert_eq!(r.mode, Mode::Windows(WhyWindows::Ignored));
    }

    /// Adversarial review: with this machine's clock two hours ahead of the server's, a complete
    /// poll moved the watermark to "our now − overlap", past alerts the server had not yet
    /// stamped; the next one was never read. The watermark follows the server's `Date` and never
    /// passes the cursor.
    #[test]
    fn a_clock_ahead_of_the_server_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
        let behind = Duration::from_secs(2 * 3_600);
        let server_now = || ApiTime::now().minus(behind);
        let a = FakeAlert::new("a", server_now().minus(Duration::from_secs(1_800)), None);
        let source = FakeSource::new(vec![a], OrderBy::Sorted).with_server_clock_behind(behind);
        let settings = PollSettings {
            page_size: 10,
            ..SETTINGS
        };
        block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
        // Stamped by the server's clock, and visible three minutes late.
        let late = server_now().minus(Duration::from_secs(180));
        source.with_world(|w| w.push(FakeAlert::new("b", late, None)));
        block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
        assert_eq!(stored(&store.lock().unwrap()).len(), 2);
    }

    /// Halving a creation window keeps its open sides open and never loses a tick.
    #[test]
    fn splitting_creation_windows_covers_everything() {
        let t = ApiTime::parse("2026-01-01T00:00:00Z").unwrap();
        let (lo, hi) = split(Created::Within(None, Some(t))).unwrap();
        let Created::Within(None, Some(mid)) = lo else {
            panic!("{lo:?}")
        };
        assert_eq!(hi, Created::Within(Some(mid), Some(t)));
        let (lo, hi) = split(Created::Within(Some(t), None)).unwrap();
        let Created::Within(Some(a), Some(mid)) = lo else {
            panic!("{lo:?}")
        };
        assert_eq!(a, t);
        assert_eq!(hi, Created::Within(Some(mid), None));
        assert!(split(Created::Missing).is_none());
        let one = ApiTime::from_ticks(t.ticks() + 1);
        assert!(split(Created::Within(Some(t), Some(one))).is_none());
    }
}
