//! Planning the reads: keyset pages, the window fallback, an instant read by creation windows,
//! and `$skip`/nextLink passes. What one call does and what a page proves is in [`super::page`];
//! storing a page with its cursor in [`super::commit`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Broken, Mode, PollError, Quirk, WhyWindows};
use crate::alert::time::ApiTime;
use crate::config::MAX_LOOKBACK;
use crate::source::{AlertSource, Bound, Created, NextLink, Page, PageRequest, SourceError};
use crate::store::{Counts, RunId, Store};

pub(super) struct Pager<'a, S> {
    pub(super) mode: Mode,
    pub(super) source: &'a S,
    pub(super) store: &'a Arc<Mutex<Store>>,
    pub(super) tenant: &'a str,
    /// The poll's run row, begun by the first page that writes anything (a quiet poll has none).
    pub(super) run: Option<RunId>,
    /// Calls of pages that wrote nothing, recorded with the next write (or the quiet poll).
    pub(super) deferred_calls: Vec<std::time::SystemTime>,
    pub(super) top: u32,
    pub(super) calls_before: u64,
    pub(super) counts: Counts,
    pub(super) pages: u64,
    /// How far a page settles at most: the poll's start, less the overlap and the clock skew.
    pub(super) settles_at: ApiTime,
    /// Alerts stored (new or changed) dated in the future.
    pub(super) future: u64,
    /// The overlap, for lowering `settles_at` to the server's clock.
    pub(super) overlap: Duration,
    /// The cursor when the poll began: a short page with nothing newer is what every quiet poll
    /// reads, and is never probed for a cap.
    pub(super) cursor_start: Option<ApiTime>,
    /// A page cap below `$top` the server was caught at this poll (a short page without a
    /// nextLink that was not the end): pages of at least this size count as full.
    pub(super) cap: Option<usize>,
    /// The server sent a page of `$top` elements this poll, so it does not cap below `$top`.
    pub(super) seen_full: bool,
    /// The server answered 400 to a null comparison on the creation time.
    pub(super) null_refused: bool,
    /// The server sent alerts outside the asked window: narrowing filters are not trusted.
    pub(super) filter_ignored: bool,
    /// What the server did beyond or against Graph's documented surface, each said once.
    pub(super) quirks: Vec<Quirk>,
    /// The instant being read (more alerts share it than fit on a page) while inside it: a poll
    /// that stops there has not got past it.
    pub(super) inside: Option<ApiTime>,
    /// The most calls this poll makes.
    pub(super) max_calls: u64,
    /// A read-back to record with the first commit (see [`super::poll_tenant`]).
    pub(super) readback_start: Option<ApiTime>,
    /// A read-back is under way (left by an earlier poll, or starting with this one).
    pub(super) reading_back: bool,
}

/// The most passes over one instant before giving up (alerts at it keep changing).
const MAX_TIE_PASSES: u32 = 8;

/// One tick of the API's clock (100 ns).
pub(super) const TICK: Duration = Duration::from_nanos(100);

/// A request with the pager's page size.
pub(super) fn request(
    bound: Bound,
    before: Option<ApiTime>,
    created: Option<Created>,
    ordered: bool,
    top: u32,
) -> PageRequest {
    PageRequest {
        bound,
        before,
        created,
        ordered,
        top,
        skip: 0,
    }
}

impl<S: AlertSource> Pager<'_, S> {
    pub(super) async fn run(&mut self, start: ApiTime) -> Result<(), PollError> {
        tracing::debug!(tenant = self.tenant, from = %start, "Polling.");
        let mut bound = Bound::AtOrAfter(start);
        let mut first = true;
        loop {
            let req = request(bound, None, None, true, self.top);
            let page = match self.fetch(req).await {
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
            if self.filter_ignored {
                // Keyset paging steps by what the filter returned: without the filter honoured,
                // only reading the whole answer proves nothing below the bound was left out.
                self.commit(page, None).await?;
                let done = self.scan(req).await?;
                return self.commit(Page::default(), done).await;
            }
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
                    return Err(Broken::NoValidAlert {
                        received: page.received,
                    }
                    .into());
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
                let check = self
                    .fetch(request(bound, Some(hi), None, true, self.top))
                    .await?;
                let on_page: HashSet<&str> = page.alerts.iter().map(|a| a.id.as_str()).collect();
                if self.filter_ignored {
                    self.commit(page, None).await?;
                    let done = self.scan(req).await?;
                    return self.commit(Page::default(), done).await;
                }
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
            let req = request(Bound::AtOrAfter(lo), hi, None, false, self.top);
            let page = self.fetch(req).await?;
            if self.filter_ignored {
                // Splitting relies on the filter: without it every half would come back full.
                self.commit(page, None).await?;
                let done = self.scan(req).await?;
                self.commit(Page::default(), done).await?;
                continue;
            }
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
    /// every pass. So the instant is split by `createdDateTime`, which never changes: an alert can
    /// leave a creation window but never shift into one already read. A window that still fills a
    /// page is halved; one that cannot be split (alerts created in the same tick) falls back to
    /// `$skip` passes, until two passes in a row see the same alerts.
    ///
    /// Alerts without a creation time are read by `createdDateTime eq null`, a comparison Graph
    /// does not document. When the server refuses it, the creation windows cannot cover them, and
    /// the instant is read whole, without any creation clause, by `$skip`/nextLink passes (the
    /// same proof as above); the refusal is remembered for the rest of the poll.
    async fn read_instant(&mut self, t: ApiTime, ordered: bool) -> Result<(), PollError> {
        tracing::info!(tenant = self.tenant, instant = %t, "More alerts share one lastUpdateTime than fit on a page; reading the instant by creation time.");
        self.inside = Some(t);
        let whole = request(Bound::Exactly(t), None, None, ordered, self.top);
        if self.null_refused {
            self.skip_passes(whole, Some(t)).await?;
            self.inside = None;
            return Ok(());
        }
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
            let req = request(Bound::Exactly(t), None, Some(window), ordered, self.top);
            let page = match self.fetch(req).await {
                Err(PollError::Source(SourceError::Refused { status: 400, .. }))
                    if window == Created::Missing =>
                {
                    self.null_refused = true;
                    self.say(Quirk::NullRefused);
                    self.skip_passes(whole, Some(t)).await?;
                    self.inside = None;
                    return Ok(());
                }
                other => other?,
            };
            if self.filter_ignored {
                self.commit(page, Some(t)).await?;
                self.skip_passes(whole, Some(t)).await?;
                self.inside = None;
                return Ok(());
            }
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
                None => {
                    self.skip_passes(req, Some(t)).await?;
                }
            }
        }
        self.inside = None;
        Ok(())
    }

    /// Reads a request to its end when its filter cannot be trusted (the server sent alerts
    /// outside it): pass after pass, keeping what matches ([`super::page`] drops the rest).
    /// Returns the latest time read, which the cursor may take once the scan is complete.
    async fn scan(&mut self, req: PageRequest) -> Result<Option<ApiTime>, PollError> {
        self.skip_passes(req, None).await
    }

    /// Reads one request with `$skip` (or the server's nextLink), pass after pass, until a pass
    /// sees every alert of the pass before. An alert can only be skipped in a pass if another alert
    /// read in that pass left the request's window during it; that one is then missing from the
    /// next pass. So when nothing is missing, the earlier pass skipped nothing. (Alerts that left
    /// are read later, at their new time.) Each page is committed with `cursor`; the latest time
    /// read is returned.
    async fn skip_passes(
        &mut self,
        req: PageRequest,
        cursor: Option<ApiTime>,
    ) -> Result<Option<ApiTime>, PollError> {
        let mut previous: Option<HashSet<String>> = None;
        let mut latest: Option<ApiTime> = None;
        for _pass in 0..MAX_TIE_PASSES {
            let mut ids = HashSet::new();
            let mut skip = 0u32;
            let mut link: Option<NextLink> = None;
            let mut followed: HashSet<String> = HashSet::new();
            loop {
                let page = match link.take() {
                    Some(l) => self.follow(&l).await?,
                    None => match self.fetch(PageRequest { skip, ..req }).await {
                        Err(PollError::Source(SourceError::Refused { status: 400, .. }))
                            if skip > 0 =>
                        {
                            // The server's own continuation was not there either: the pass
                            // ends, and the next pass (or poll) compares what it saw.
                            self.say(Quirk::SkipRefused);
                            break;
                        }
                        other => other?,
                    },
                };
                let full = self.is_full(&page);
                let next = page.next.clone();
                let said_more = page.more;
                let received = page.received;
                ids.extend(page.alerts.iter().map(|a| a.id.clone()));
                latest = latest.max(page.alerts.iter().map(|a| a.last_update).max());
                self.commit(page, cursor).await?;
                if !full {
                    break;
                }
                // By what the page held, not by `$top`: a server that caps its pages below
                // `$top` (and says so with a nextLink) would otherwise be skipped past.
                skip = skip.saturating_add(u32::try_from(received).unwrap_or(u32::MAX));
                // The server's continuation first (Graph sends one on every page with more);
                // `$skip` where it sends none, up to the API's limit (Graph: 500).
                match next {
                    Some(l) if followed.insert(l.0.to_string()) => link = Some(l),
                    Some(_) => {
                        // The same link again: following it would read the same page for
                        // ever. `$skip` goes on where it may; past its limit the pass ends.
                        self.say(Quirk::LoopingLink);
                        if skip > self.source.max_skip() {
                            break;
                        }
                    }
                    // Past the `$skip` limit the server's own continuation is the only way on:
                    // one it sent but that cannot be followed (another host) stops the poll.
                    None if skip > self.source.max_skip() && said_more => {
                        return Err(Broken::NoContinuation {
                            read: describe(&req),
                            max_skip: self.source.max_skip(),
                        }
                        .into());
                    }
                    // A full last page without a link, past the `$skip` limit: the server says
                    // there is no more (an instant of exactly a multiple of the page size).
                    None if skip > self.source.max_skip() => break,
                    None => {}
                }
            }
            if previous.as_ref().is_some_and(|p| p.is_subset(&ids)) {
                return Ok(latest);
            }
            previous = Some(ids);
        }
        Err(Broken::KeptChanging {
            read: describe(&req),
            passes: MAX_TIE_PASSES,
        }
        .into())
    }

    /// A page is the last only when it is short (below `$top`, or below a cap the server was
    /// caught at) and the server did not say there is more.
    pub(super) fn is_full(&self, page: &Page) -> bool {
        let limit = self.cap.unwrap_or(self.top as usize).min(self.top as usize);
        page.received >= limit || page.more
    }
}

/// A request in words, for an error.
fn describe(req: &PageRequest) -> String {
    match req.bound {
        Bound::Exactly(t) => format!("the instant {t}"),
        Bound::AtOrAfter(t) => format!("from {t}"),
        Bound::After(t) => format!("after {t}"),
    }
}

/// The earliest and latest instants a creation window is split within: the OData literal range,
/// `0001-01-01T00:00:00Z` to `9999-12-31T23:59:59.9999999Z`. Open-ended windows stay open on
/// that side, so a value outside even this range is still covered.
const SPLIT_MIN: ApiTime = ApiTime::from_ticks(-621_355_968_000_000_000);
const SPLIT_MAX: ApiTime = ApiTime::from_ticks(2_534_023_007_999_999_999);

/// Halves a creation window, keeping open sides open, or `None` when it cannot be split (one
/// tick wide, or `null`).
pub(super) fn split(window: Created) -> Option<(Created, Created)> {
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
