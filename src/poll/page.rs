//! One call and what its page proves: the poll's cap on calls, the server's clock, pages larger
//! than `$top`, alerts outside the asked filter or `serviceSource`, a nextLink to an empty page,
//! and a page capped below `$top` without a nextLink. Each oddity is said once per poll
//! ([`Quirk`]) and handled so that nothing is lost.

use std::collections::HashSet;
use std::time::Duration;

use super::pager::Pager;
use super::{PollError, Quirk};
use crate::alert::Alert;
use crate::alert::time::ApiTime;
use crate::source::{AlertSource, Bound, Created, NextLink, Page, PageRequest};

/// The most calls one poll makes. The deadline (the next scheduled poll) bounds a poll in time;
/// this bounds it in calls, whatever the budget allows: a server that answers fast but never lets
/// the pager finish (a link that loops, a filter it ignores) costs at most this much per poll. A
/// backfill larger than this many pages resumes where it stopped.
pub(crate) const MAX_CALLS_PER_POLL: u64 = 1_000;

/// How far the server's `Date` may be from this machine's clock and still be believed. Beyond
/// it (a server clock in 1970 or 2000), following it would pin the settled watermark and make
/// every quiet poll re-read the whole lookback.
const MAX_DATE_SKEW: Duration = Duration::from_secs(86_400);

/// How far this machine's clock may be ahead of Microsoft's: subtracted from the settled watermark,
/// which is the one place the pager trusts this machine's clock against the API's timestamps.
pub(super) const CLOCK_SKEW: Duration = Duration::from_secs(60);

impl<S: AlertSource> Pager<'_, S> {
    /// Says a quirk of the server once per poll.
    pub(super) fn say(&mut self, quirk: Quirk) {
        if !self.quirks.contains(&quirk) {
            tracing::warn!(tenant = self.tenant, "{quirk}");
            self.quirks.push(quirk);
        }
    }

    /// Before every call: the poll stops at its cap on calls as at its deadline.
    fn may_call(&self) -> Result<(), PollError> {
        let made = self.source.calls().saturating_sub(self.calls_before);
        if made >= self.max_calls {
            return Err(PollError::CallLimit { calls: made });
        }
        Ok(())
    }

    /// One page of `req`, checked against what was asked, and with "is there more?" settled.
    pub(super) async fn fetch(&mut self, req: PageRequest) -> Result<Page, PollError> {
        self.may_call()?;
        let mut page = self.source.fetch(&req).await?;
        self.screen(Some(&req), &mut page);
        self.check_more(&req, &mut page).await?;
        self.check_cap(&req, &mut page).await?;
        Ok(page)
    }

    /// The page behind a `nextLink`, checked as [`Pager::fetch`] checks a page.
    pub(super) async fn follow(&mut self, link: &NextLink) -> Result<Page, PollError> {
        self.may_call()?;
        let mut page = self.source.follow(link).await?;
        self.screen(None, &mut page);
        Ok(page)
    }

    /// What every page teaches besides its alerts: the server's clock, its invalid elements,
    /// and whether it honoured `$top`, the filter and `serviceSource`. Alerts outside the filter
    /// are dropped (each is read by its own window); another product's alerts are not stored
    /// ([`Pager::commit`]).
    fn screen(&mut self, req: Option<&PageRequest>, page: &mut Page) {
        self.observe(page);
        if page.received > self.top as usize {
            self.say(Quirk::Oversize);
            truncate(page, self.top as usize);
        }
        if page.received >= self.top as usize {
            self.seen_full = true;
        }
        if let Some(cap) = self.cap.as_mut() {
            // A page larger than the cap shows the server sends at least that much.
            *cap = (*cap).max(page.received);
        }
        // Another product's alerts still tell the page's order and time span (they matched the
        // time filter); they are left out only when the page is stored.
        let services = self.source.services();
        if !page.alerts.iter().all(|a| serves(&services, a)) {
            self.say(Quirk::IgnoredService);
        }
        if let Some(req) = req {
            let before = page.alerts.len();
            page.alerts.retain(|a| within(req, a));
            if page.alerts.len() < before {
                self.filter_ignored = true;
                self.say(Quirk::IgnoredFilter);
            }
        }
    }

    /// The server's clock and the page's invalid elements.
    fn observe(&mut self, page: &Page) {
        // When this machine's clock runs ahead of the server's, the watermark follows the
        // server's: everything settled must have been read `overlap` after its update by the
        // clock that stamped it. A `Date` far from this machine's clock, or before an alert the
        // server itself stamped, is wrong: it is said and not followed.
        if let Some(served) = page.served_at {
            let now = ApiTime::now();
            let far = served < now.minus(MAX_DATE_SKEW) || served > now.plus(MAX_DATE_SKEW);
            if far || self.cursor_start.is_some_and(|c| served < c.min(now)) {
                self.say(Quirk::FarDate);
            } else {
                self.settles_at = self
                    .settles_at
                    .min(served.minus(self.overlap).minus(CLOCK_SKEW));
            }
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
        self.may_call()?;
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

    /// A short page without a nextLink may still not be the end: a server can cap its pages below
    /// `$top` and say nothing. Asking past every short page would cost every quiet poll a second
    /// call, so only a page that could be capped is probed: one that brought alerts newer than the
    /// cursor (a quiet poll re-reads only old ones), on a server not seen to send a full page this
    /// poll. The probe is the same request past what the page held; anything new on it means the
    /// page was capped, and pages of that size count as full from then on.
    async fn check_cap(&mut self, req: &PageRequest, page: &mut Page) -> Result<(), PollError> {
        let newest = page.alerts.iter().map(|a| a.last_update).max();
        if self.seen_full
            || page.more
            || page.received == 0
            || self.is_full(page)
            || newest.is_none()
            || newest <= self.cursor_start
        {
            return Ok(());
        }
        let Some(skip) = u32::try_from(page.received)
            .ok()
            .and_then(|n| req.skip.checked_add(n))
            .filter(|s| *s <= self.source.max_skip())
        else {
            return Ok(());
        };
        self.may_call()?;
        let mut probe = self.source.fetch(&PageRequest { skip, ..*req }).await?;
        self.observe(&probe);
        if probe.received >= self.top as usize {
            self.seen_full = true;
        }
        let on_page: HashSet<&str> = page.alerts.iter().map(|a| a.id.as_str()).collect();
        probe.alerts.retain(|a| within(req, a));
        if probe
            .alerts
            .iter()
            .any(|a| !on_page.contains(a.id.as_str()))
        {
            self.say(Quirk::Capped);
            self.cap = Some(self.cap.map_or(page.received, |c| c.min(page.received)));
            page.more = true;
        }
        Ok(())
    }
}

/// Whether an alert belongs to the products the tenant reads (`services`: `all`, or Graph's names
/// joined by commas). An alert that does not say (the MDE API's) is the endpoint's.
pub(super) fn serves(services: &str, a: &Alert) -> bool {
    match &a.fields.service {
        None => true,
        Some(s) => services == "all" || services.split(',').any(|x| x == s),
    }
}

/// Whether an alert matches the request's time and creation filter.
fn within(req: &PageRequest, a: &Alert) -> bool {
    let t = a.last_update;
    let bound = match req.bound {
        Bound::AtOrAfter(b) => t >= b,
        Bound::After(b) => t > b,
        Bound::Exactly(b) => t == b,
    };
    let created = match (req.created, a.fields.created) {
        (None, _) => true,
        (Some(Created::Missing), c) => c.is_none(),
        (Some(Created::Within(None, None)), c) => c.is_some(),
        (Some(Created::Within(_, _)), None) => false,
        (Some(Created::Within(lo, hi)), Some(c)) => {
            lo.is_none_or(|lo| c >= lo) && hi.is_none_or(|hi| c < hi)
        }
    };
    bound && created && req.before.is_none_or(|b| t < b)
}

/// Keeps the first `top` elements of a page (valid or not), as if the server had honoured `$top`:
/// `$skip` then steps by what was kept, and the rest is read on the next page.
fn truncate(page: &mut Page, top: usize) {
    let rejected: HashSet<usize> = page.rejected.iter().map(|r| r.index).collect();
    let mut positions = (0..page.received).filter(|i| !rejected.contains(i));
    page.alerts
        .retain(|_| positions.next().is_some_and(|i| i < top));
    page.rejected.retain(|r| r.index < top);
    page.received = top;
    // What was cut is read again by the next request, not behind the server's link (which
    // points past all that was sent).
    page.next = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, t: &str, created: Option<&str>) -> Alert {
        let v = serde_json::json!({"id": id, "lastUpdateTime": t, "alertCreationTime": created});
        Alert::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn an_oversize_page_is_cut_to_top_by_position() {
        let mut page = Page {
            alerts: vec![
                alert("a", "2026-01-01T00:00:00Z", None),
                alert("b", "2026-01-01T00:00:01Z", None),
                alert("c", "2026-01-01T00:00:02Z", None),
            ],
            received: 4,
            ..Page::default()
        };
        page.rejected.push(crate::source::Rejected {
            index: 1,
            why: crate::alert::Invalid::NotAnObject,
            raw: "1".into(),
        });
        truncate(&mut page, 2);
        let ids: Vec<&str> = page.alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!(page.rejected.len(), 1);
        assert_eq!(page.received, 2);
    }

    #[test]
    fn the_local_filter_matches_the_query() {
        let t = ApiTime::parse("2026-01-01T00:00:00Z").unwrap();
        let c = ApiTime::parse("2025-12-01T00:00:00Z").unwrap();
        let a = alert("a", "2026-01-01T00:00:00Z", Some("2025-12-01T00:00:00Z"));
        let null = alert("n", "2026-01-01T00:00:00Z", None);
        let r = |bound, created| PageRequest {
            bound,
            before: None,
            created,
            ordered: false,
            top: 10,
            skip: 0,
        };
        assert!(within(&r(Bound::Exactly(t), None), &a));
        assert!(!within(&r(Bound::After(t), None), &a));
        assert!(within(
            &r(Bound::AtOrAfter(t), Some(Created::Within(Some(c), None))),
            &a
        ));
        assert!(!within(
            &r(Bound::AtOrAfter(t), Some(Created::Within(None, Some(c)))),
            &a
        ));
        assert!(within(
            &r(Bound::AtOrAfter(t), Some(Created::Missing)),
            &null
        ));
        assert!(!within(&r(Bound::AtOrAfter(t), Some(Created::Missing)), &a));
        assert!(!within(
            &r(Bound::AtOrAfter(t), Some(Created::Within(None, None))),
            &null
        ));
    }
}
