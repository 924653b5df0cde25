//! Which API each tenant reads and why (`api_choice`), for `status`: see
//! [`crate::source::route`].

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// Which API a tenant reads and why, as recorded (see [`Store::record_api_choice`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiChoiceRow {
    /// `mde` or `graph`.
    pub api: String,
    /// A short reason code (`pinned`, `graph_permitted`, `graph_not_permitted`, …).
    pub reason: String,
    /// The reason in words.
    pub detail: String,
    /// Since when the tenant reads this API (RFC 3339, UTC).
    pub since: String,
}

impl Store {
    /// Which API the tenant reads and why, as last recorded by [`Store::record_api_choice`].
    pub fn api_choice(&self, tenant: &str) -> Result<Option<ApiChoiceRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT api, reason, detail, since FROM api_choice WHERE tenant = ?1",
                [tenant],
                |r| {
                    Ok(ApiChoiceRow {
                        api: r.get(0)?,
                        reason: r.get(1)?,
                        detail: r.get(2)?,
                        since: r.get(3)?,
                    })
                },
            )
            .optional()
            .or_else(|e| {
                // A store of an older version opened read-only (`status`) has no such table yet:
                // nothing is recorded.
                if e.to_string().contains("no such table") {
                    Ok(None)
                } else {
                    Err(self.err(e))
                }
            })
    }

    /// Records which API the tenant reads and why, when that differs from what is recorded (so
    /// that a steady state writes nothing). Returns whether it wrote.
    pub fn record_api_choice(
        &mut self,
        tenant: &str,
        api: &str,
        reason: &str,
        detail: &str,
    ) -> Result<bool, StoreError> {
        if let Some(row) = self.api_choice(tenant)?
            && row.api == api
            && row.reason == reason
            && row.detail == detail
        {
            return Ok(false);
        }
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.conn
            .execute(
                "INSERT INTO api_choice (tenant, api, reason, detail, since) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (tenant) DO UPDATE SET api = excluded.api, reason = excluded.reason, \
                 detail = excluded.detail, since = CASE WHEN api_choice.api = excluded.api \
                 THEN api_choice.since ELSE excluded.since END",
                params![tenant, api, reason, detail, since],
            )
            .map_err(|e| self.err(e))?;
        Ok(true)
    }
}
