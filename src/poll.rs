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
//! The pager checks that each page really is in ascending order: if the server ignored `$orderby`,
//! keyset paging would be unsafe, and the poll stops with an error rather than guess.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::MAX_LOOKBACK;
use crate::source::{AlertSource, Bound, Page, PageRequest, SourceError};
use crate::store::{Counts, Outcome, RunId, Store, StoreError};
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
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "{}: {} new, {} updated, {} unchanged, {} stale, {} invalid; {} API call{} in {:.1}s; cursor {}",
            self.tenant,
            c.new,
            c.updated,
            c.unchanged,
            c.stale,
            c.invalid,
            self.api_calls,
            if self.api_calls == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64(),
            self.cursor_after
                .map(|t| t.to_api_string())
                .unwrap_or_else(|| "(none yet)".into())
        )
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
    let api_calls = source.calls() - calls_before;
    let (counts, pages) = (pager.counts, pager.pages);
    match result {
        Ok(()) => {
            let cursor_after = blocking(store, {
                let tenant = tenant.to_owned();
                move |s| {
                    s.finish_run(run, Outcome::Ok, api_calls, None)?;
                    s.cursor(&tenant)
                }
            })
            .await?;
            Ok(PollReport {
                tenant: tenant.to_owned(),
                counts,
                pages,
                api_calls,
                cursor_before,
                cursor_after,
                elapsed: started.elapsed(),
                run,
            })
        }
        Err(e) => {
            let msg = e.to_string();
            // Recording the failure is best effort: the store itself may be what failed.
            let _ = blocking(store, move |s| {
                s.finish_run(run, Outcome::Failed, api_calls, Some(&msg))
            })
            .await;
            Err(e)
        }
    }
}

struct Pager<'a, S> {
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
        loop {
            let page = self.fetch(bound, 0).await?;
            let full = page.received >= self.top as usize;
            let range = time_range(&page)?;
            match range {
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
                Some((lo, hi)) if full && lo == hi => {
                    self.commit(page, Some(hi)).await?;
                    self.read_instant(hi).await?;
                    bound = Bound::After(hi);
                }
                Some((_, hi)) => {
                    self.commit(page, Some(hi)).await?;
                    if !full {
                        return Ok(());
                    }
                    bound = Bound::AtOrAfter(hi);
                }
            }
        }
    }

    /// Reads every alert at instant `t` with `$skip`, pass after pass until a pass finds nothing
    /// the earlier ones missed (alerts leaving the instant mid-pass shift the `$skip` window).
    async fn read_instant(&mut self, t: ApiTime) -> Result<(), PollError> {
        tracing::info!(tenant = self.tenant, instant = %t, "More alerts share one lastUpdateTime than fit on a page; paging inside it.");
        let mut seen: HashSet<String> = HashSet::new();
        for _pass in 0..MAX_TIE_PASSES {
            let mut found_new = false;
            let mut skip = 0u32;
            loop {
                let page = self.fetch(Bound::Exactly(t), skip).await?;
                let received = page.received;
                for a in &page.alerts {
                    found_new |= seen.insert(a.id.clone());
                }
                self.commit(page, Some(t)).await?;
                if received < self.top as usize {
                    break;
                }
                skip = skip.saturating_add(self.top);
            }
            if !found_new {
                return Ok(());
            }
        }
        Err(PollError::Protocol(format!(
            "the alerts at {t} kept changing over {MAX_TIE_PASSES} passes; will try again next poll"
        )))
    }

    async fn fetch(&mut self, bound: Bound, skip: u32) -> Result<Page, PollError> {
        let req = PageRequest {
            bound,
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
        let counts = blocking(self.store, move |s| {
            let mut w = s.writer()?;
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

/// The page's earliest and latest `lastUpdateTime`, checking that it is in ascending order.
fn time_range(page: &Page) -> Result<Option<(ApiTime, ApiTime)>, PollError> {
    let mut prev: Option<ApiTime> = None;
    for a in &page.alerts {
        if let Some(p) = prev
            && a.last_update < p
        {
            return Err(PollError::Protocol(format!(
                "the API returned a page that is not ordered by lastUpdateTime ({} after {}); \
                 it seems to ignore $orderby, and paging by time would be unsafe",
                a.last_update, p
            )));
        }
        prev = Some(a.last_update);
    }
    Ok(page
        .alerts
        .first()
        .zip(page.alerts.last())
        .map(|(a, b)| (a.last_update, b.last_update)))
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
