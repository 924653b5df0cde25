//! The state file beside the store (`<store>.daemon.json`) that tells `status` what the running
//! daemon plans next. Written by the daemon at most once a second while anything changes
//! (`daemon::publish`), removed at a clean stop, read by
//! `status` (which trusts it only while its `pid` is alive).
//!
//! The format is a contract between two processes (possibly of two versions during an upgrade),
//! so it is one typed struct shared by the writer and the reader, with the field names and the
//! RFC 3339 spelling (`2026-01-31T12:05:00+00:00`, chrono's `to_rfc3339`) of the first version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the daemon writes: its process, when, and each tenant's next poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonState {
    /// The daemon's process id; a state file whose process is gone is stale.
    pub(crate) pid: u32,
    /// When the file was written.
    #[serde(with = "rfc3339")]
    pub(crate) written_at: DateTime<Utc>,
    /// Each configured tenant, by name (sorted, as the first version wrote them).
    pub tenants: BTreeMap<String, TenantState>,
}

/// One tenant's schedule as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    /// When its next poll starts (its tick plus its stagger).
    #[serde(with = "rfc3339")]
    pub next_poll: DateTime<Utc>,
    /// A poll of this tenant is running now.
    pub(crate) running: bool,
}

/// Why the state file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StateError {
    /// Writing or publishing the file failed.
    #[error("cannot write the daemon state file {}", path.display())]
    Write {
        /// The state file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

/// The state file of the store at `store`.
pub fn state_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".daemon.json");
    PathBuf::from(p)
}

impl DaemonState {
    /// Writes the state file atomically (a reader never sees half of it), mode 0644 so a
    /// monitoring user can read it.
    pub(crate) fn write(&self, store: &Path) -> Result<(), StateError> {
        let path = state_path(store);
        // Serialized into memory first: one write, not one syscall per JSON token (a profile of
        // 1,000 tenants found 85 % of the daemon's CPU there).
        let text = serde_json::to_vec_pretty(self).map_err(|e| StateError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::export::write_atomic(&path, 0o644, |f| std::io::Write::write_all(f, &text))
            .map_err(|source| StateError::Write { path, source })
    }
}

/// The running daemon's state, if the file is there, parses, and its process is alive. Anything
/// else (no daemon, a crash that left the file behind, a file being replaced) is "not running".
pub fn read(store: &Path) -> Option<DaemonState> {
    let text = std::fs::read_to_string(state_path(store)).ok()?;
    let state: DaemonState = serde_json::from_str(&text).ok()?;
    Path::new(&format!("/proc/{}", state.pid))
        .exists()
        .then_some(state)
}

/// chrono's `to_rfc3339` spelling (`+00:00`, not serde's `Z`), which the first version wrote.
/// Hand-written because chrono's own serde module spells UTC `Z`; these are the two lines it takes.
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample(pid: u32) -> DaemonState {
        let at = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        DaemonState {
            pid,
            written_at: at,
            tenants: [
                (
                    "zeta".to_owned(),
                    TenantState {
                        next_poll: at + chrono::Duration::milliseconds(1500),
                        running: true,
                    },
                ),
                (
                    "alpha".to_owned(),
                    TenantState {
                        next_poll: at,
                        running: false,
                    },
                ),
            ]
            .into(),
        }
    }

    /// The file reads exactly as the first version's `json!` wrote it: same names, same time
    /// spelling, tenants sorted.
    #[test]
    fn the_format_is_the_first_versions() {
        let text = serde_json::to_string(&sample(42)).unwrap();
        assert_eq!(
            text,
            r#"{"pid":42,"written_at":"2026-03-29T01:00:00+00:00","tenants":{"alpha":{"next_poll":"2026-03-29T01:00:00+00:00","running":false},"zeta":{"next_poll":"2026-03-29T01:00:01.500+00:00","running":true}}}"#
        );
        let old = serde_json::json!({
            "pid": 42,
            "written_at": "2026-03-29T01:00:00+00:00",
            "tenants": {
                "alpha": {"next_poll": "2026-03-29T01:00:00+00:00", "running": false},
                "zeta": {"next_poll": "2026-03-29T01:00:01.500+00:00", "running": true},
            },
        });
        let back: DaemonState = serde_json::from_value(old).unwrap();
        assert_eq!(back, sample(42));
    }

    /// `read` trusts a file only while its process lives.
    #[test]
    fn read_needs_a_live_pid() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("alerts.db");
        assert_eq!(read(&store), None, "no file");
        let mine = sample(std::process::id());
        mine.write(&store).unwrap();
        assert_eq!(read(&store), Some(mine));
        // Beyond pid_max (2^22): no such process.
        sample(u32::MAX - 1).write(&store).unwrap();
        assert_eq!(read(&store), None, "a stale file");
        std::fs::write(state_path(&store), "{\"pid\": 1").unwrap();
        assert_eq!(read(&store), None, "half a file");
    }
}
