//! Storing a page: its alerts and its cursor advance in one SQLite transaction, so that the
//! cursor never passes an alert that is not stored.

use std::time::Duration;

use super::PollError;
use super::blocking;
use super::page::serves;
use super::pager::Pager;
use crate::alert::time::ApiTime;
use crate::source::{AlertSource, Page};
use crate::store::Upsert;

/// How far ahead of this machine's clock an alert's time may be before it is reported as dated in
/// the future (ordinary clock skew between Microsoft and this machine stays quiet).
const FUTURE_SLACK: Duration = Duration::from_secs(300);

impl<S: AlertSource> Pager<'_, S> {
    /// Stores `page` and moves the cursor to `cursor` (never past this machine's clock) and the
    /// settled watermark with it, in one transaction.
    pub(super) async fn commit(
        &mut self,
        page: Page,
        cursor: Option<ApiTime>,
    ) -> Result<(), PollError> {
        // Another product's alerts, sent by a server that ignored the serviceSource clause, are
        // not this tenant's: never stored.
        let services = self.source.services();
        let mut page = page;
        page.alerts.retain(|a| serves(&services, a));
        let tenant = self.tenant.to_owned();
        let run = self.run;
        let calls = self.source.calls() - self.calls_before;
        let made = self.source.take_unsaved_calls();
        let api = self.source.name();
        // A timestamp from the future (a bad clock upstream) must not carry the cursor past alerts
        // still to come, nor shrink the next poll's overlap: the cursor never passes this
        // machine's clock. (Everything up to the page's last time is read, so `now` is proven.)
        let now = ApiTime::now();
        let cursor = cursor.map(|c| c.min(now));
        let settled = cursor.map(|c| c.min(self.settles_at));
        let future_from = now.plus(FUTURE_SLACK);
        let readback = self.readback_start.take();
        // A read-back under way moves with every page, quiet or not.
        let reading_back = self.reading_back;
        let mut deferred = std::mem::take(&mut self.deferred_calls);
        let (counts, future, run, deferred) = blocking(self.store, move |s| {
            let mut w = s.poll_writer(&tenant)?;
            let mut future = Vec::new();
            for a in &page.alerts {
                let u = w.upsert(&tenant, a)?;
                if a.last_update > future_from && matches!(u, Upsert::New | Upsert::Updated) {
                    future.push((a.id.clone(), a.last_update));
                }
            }
            let moves = match (cursor, settled) {
                (Some(c), Some(_)) => w.cursor_moves(&tenant, c, (api, &services))?,
                _ => false,
            };
            let c = w.counts();
            // Alerts read again unchanged, no cursor to move, nothing to record: the transaction
            // has written nothing, and is dropped (rolled back) before it costs a byte. Its calls
            // wait for the next write or the end of the poll.
            if run.is_none()
                && !moves
                && !reading_back
                && readback.is_none()
                && page.rejected.is_empty()
                && c.new == 0
                && c.updated == 0
                && c.stale == 0
                && c.invalid == 0
            {
                deferred.extend(made);
                return Ok((c, future, None, deferred));
            }
            let run = w.poll_run(&tenant, run)?;
            if let Some(from) = readback {
                w.start_readback(&tenant, from, (api, &services))?;
            }
            deferred.extend(made);
            w.record_calls(&tenant, &deferred)?;
            for r in &page.rejected {
                w.reject(&tenant, &r.why.to_string(), &r.raw)?;
            }
            if let (Some(c), Some(st)) = (cursor, settled) {
                w.advance_cursor(&tenant, c, st, (api, &services))?;
                w.advance_readback(&tenant, st)?;
            }
            let wrote = w.wrote_streak();
            let counts = w.commit(Some(run), calls)?;
            if wrote {
                s.quiet_written(&tenant);
            }
            Ok((counts, future, Some(run), Vec::new()))
        })
        .await?;
        self.run = run.or(self.run);
        self.deferred_calls = deferred;
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
