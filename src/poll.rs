//! One poll of one tenant: plan → fetch → store, page by page, losing nothing while the API moves.
//!
//! # Why keyset paging
//!
//! Defender's result order is undocumented and alerts change while you page: an analyst resolves
//! one, an investigation updates fifty. A `$skip` pager over such a moving set silently skips rows
//! (everything after an updated alert shifts up by one), and a cursor that then jumps past them loses
//! them for good. So pages are asked for by *time*, oldest first:
//!
//! 1. The first page asks `lastUpdateTime ge A` with `A = cursor − overlap` (first run:
//!    `now − initial_lookback`, at most 180 days). The overlap re-reads alerts that became visible
//!    after their `lastUpdateTime` (ingestion delay).
//! 2. Each next page asks `lastUpdateTime ge T`, where `T` is the largest time on the page just read.
//!    Alerts at exactly `T` come again and are deduplicated by the store. An alert updated mid-poll
//!    moves to the end of the order and is read later in this poll or in the next one; nothing can
//!    shift past the pager, because the pager holds no position, only a time.
//! 3. When a full page holds a single instant (more alerts share one `lastUpdateTime` than fit on a
//!    page), the instant itself is read with `eq T` and `$skip`, re-read until a pass finds no alert
//!    the earlier passes missed, and the pager continues with `gt T`.
//! 4. Each page is committed in one SQLite transaction together with the cursor advance to its `T`:
//!    every alert older than the cursor is stored, so a crash at any instant resumes without a gap.
//! 5. A short page ends the poll; a quiet poll therefore costs exactly one call.
//!
//! Keyset paging needs `$orderby`, which Microsoft does not document for alerts. The pager checks
//! that each page really is in ascending order; if the server refuses `$orderby` (400) or ignores
//! it (an unsorted page), it falls back to bounded windows, `ge A and lt B`, split in halves while
//! a window fills a page, with the same cursor guarantee at the cost of more calls.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::MAX_LOOKBACK;
use crate::source::{AlertSource, Bound, Created, Page, PageRequest, SourceError};
use crate::store::{Counts, Outcome, RunFigures, RunId, Store, StoreError};
use crate::time::ApiTime;

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
    /// The cursor before and after.
    pub cursor_before: Option<ApiTime>,
    /// The cursor after.
    pub cursor_after: Option<ApiTime>,
    /// Wall time.
    pub elapsed: Duration,
    /// The run's id in the store.
    pub run: RunId,
    /// How the pager read.
    pub mode: Mode,
    /// `Ok`, or `Partial` when it stopped at its deadline (the next poll continues).
    pub outcome: Outcome,
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
        if self.mode == Mode::Windows {
            write!(f, " (window paging: the API refused $orderby)")?;
        }
        if self.outcome == Outcome::Partial {
            write!(
                f,
                "; stopped at the deadline (the next scheduled poll), which continues from here"
            )?;
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
}

/// The most passes over one instant before giving up (alerts at it keep changing).
const MAX_TIE_PASSES: u32 = 8;

/// Polls one tenant. The store is shared behind a mutex and only touched from blocking threads.
pub async fn poll_tenant<S: AlertSource>(
    source: &S,
    store: &Arc<Mutex<Store>>,
    tenant: &str,
    settings: PollSettings,
) -> Result<PollReport, PollError> {
    let started = Instant::now();
    let calls_before = source.calls();
    let (cursor_before, run) = blocking(store, {
        let tenant = tenant.to_owned();
        move |s| Ok((s.cursor(&tenant)?, s.begin_run(&tenant, "poll")?))
    })
    .await?;
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
    };
    let result = pager.run(cursor_before, settings).await;
    let (counts, pages, mode) = (pager.counts, pager.pages, pager.mode);
    let figures = RunFigures {
        api_calls: source.calls() - calls_before,
        throttled: source.throttled(),
        waited: source.waited(),
    };
    let (outcome, error) = match &result {
        Ok(()) => (Outcome::Ok, None),
        Err(PollError::Source(SourceError::Deadline { .. })) => (Outcome::Partial, None),
        Err(e) => (Outcome::Failed, Some(e.to_string())),
    };
    let unsaved = source.take_unsaved_calls();
    let finished = blocking(store, {
        let tenant = tenant.to_owned();
        move |s| {
            s.record_calls(&tenant, &unsaved)?;
            s.finish_run(run, outcome, figures, error.as_deref())?;
            s.cursor(&tenant)
        }
    })
    .await;
    match (result, outcome) {
        (Err(e), Outcome::Failed) => Err(e),
        (_, outcome) => Ok(PollReport {
            tenant: tenant.to_owned(),
            counts,
            pages,
            api_calls: figures.api_calls,
            cursor_before,
            cursor_after: finished?,
            elapsed: started.elapsed(),
            run,
            mode,
            outcome,
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
    Windows,
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
}

impl<S: AlertSource> Pager<'_, S> {
    async fn run(
        &mut self,
        cursor: Option<ApiTime>,
        settings: PollSettings,
    ) -> Result<(), PollError> {
        let now = ApiTime::now();
        let oldest = now.minus(MAX_LOOKBACK);
        let start = match cursor {
            Some(c) => c.minus(settings.overlap),
            None => now.minus(settings.initial_lookback),
        }
        .max(oldest);
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
                    self.mode = Mode::Windows;
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
                Some(Range::Unsorted) => {
                    // Keyset paging is only safe on sorted pages. Nothing from this page is
                    // trusted; the windows pager starts again from the same bound.
                    tracing::warn!(
                        tenant = self.tenant,
                        "The API ignored $orderby (a page was not in time order); falling back to bounded time windows."
                    );
                    self.mode = Mode::Windows;
                    let from = match bound {
                        Bound::AtOrAfter(t) | Bound::Exactly(t) => t,
                        Bound::After(t) => t.plus(TICK),
                    };
                    return self.windows(from).await;
                }
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
        // Creation after the update only happens with a clock fault; ten years covers it.
        let end_of_time = t.plus(Duration::from_secs(10 * 365 * 86_400));
        // Smallest last: pops in order missing, old, recent, future.
        let mut stack = vec![
            Created::Within(t.plus(TICK), end_of_time),
            Created::Within(retention, t.plus(TICK)),
            Created::Within(ApiTime::from_ticks(0), retention),
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
            match window {
                Created::Within(a, b) if b.ticks() - a.ticks() > 1 => {
                    let mid = ApiTime::from_ticks(a.ticks() + (b.ticks() - a.ticks()) / 2);
                    stack.push(Created::Within(mid, b));
                    stack.push(Created::Within(a, mid));
                }
                _ => self.skip_passes(t, window, ordered).await?,
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
        for _pass in 0..MAX_TIE_PASSES {
            let mut ids = HashSet::new();
            let mut skip = 0u32;
            loop {
                let page = self
                    .fetch(Bound::Exactly(t), None, Some(window), ordered, skip)
                    .await?;
                let full = self.is_full(&page);
                ids.extend(page.alerts.iter().map(|a| a.id.clone()));
                self.commit(page, Some(t)).await?;
                if !full {
                    break;
                }
                skip = skip.saturating_add(self.top);
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
        let page = self.source.fetch(&req).await?;
        for r in &page.rejected {
            tracing::warn!(
                tenant = self.tenant,
                index = r.index,
                error = %r.why,
                "Skipped an element of the page that is not a valid alert; the rest of the page is stored."
            );
        }
        Ok(page)
    }

    async fn commit(&mut self, page: Page, cursor: Option<ApiTime>) -> Result<(), PollError> {
        let tenant = self.tenant.to_owned();
        let run = self.run;
        let calls = self.source.calls() - self.calls_before;
        let made = self.source.take_unsaved_calls();
        // A timestamp from the future (a bad clock upstream) must not carry the cursor past alerts
        // still to come: never further than a few minutes ahead of this machine.
        let cursor = cursor.map(|c| c.min(ApiTime::now().plus(MAX_AHEAD)));
        let counts = blocking(self.store, move |s| {
            let mut w = s.writer()?;
            w.record_calls(&tenant, &made)?;
            for a in &page.alerts {
                w.upsert(&tenant, a)?;
            }
            w.add_invalid(page.rejected.len() as u64);
            if let Some(c) = cursor {
                w.advance_cursor(&tenant, c)?;
            }
            w.commit(Some(run), calls)
        })
        .await?;
        self.counts.merge(counts);
        self.pages += 1;
        Ok(())
    }
}

/// How far ahead of this machine's clock the cursor may go.
const MAX_AHEAD: Duration = Duration::from_secs(300);

/// One tick of the API's clock (100 ns).
const TICK: Duration = Duration::from_nanos(100);

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
