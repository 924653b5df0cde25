//! The oracle: every alert's latest version, which the tests compare the store against.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::{Simulator, World};

/// The latest state of an alert, as the oracle knows it.
#[derive(Debug, Clone)]
pub struct TruthAlert {
    /// The alert's id.
    pub id: String,
    /// Its latest `lastUpdateTime`, in 100 ns ticks since the Unix epoch (`ApiTime::from_ticks`
    /// in mde-alerts turns it into an instant).
    pub last_update: i64,
    /// Its latest JSON, as `/api/alerts` serves it (with or without evidence).
    pub json: Value,
}

impl Simulator {
    /// Whether every version is visible yet (late ones included).
    pub fn all_visible(&self) -> bool {
        let now = Instant::now();
        self.lock()
            .home
            .alerts
            .values()
            .all(|v| v.iter().all(|x| x.visible_at <= now))
    }

    /// Every alert's latest version, visible or not: what a perfect client ends up with.
    pub fn truth(&self, expand_evidence: bool) -> Vec<TruthAlert> {
        truth_of(&self.lock().home, expand_evidence)
    }
}

/// A world's oracle: every alert's latest version, visible or not.
pub(crate) fn truth_of(w: &World, expand_evidence: bool) -> Vec<TruthAlert> {
    w.alerts
        .iter()
        .filter_map(|(id, versions)| {
            let v = versions.last()?;
            Some(TruthAlert {
                id: id.clone(),
                last_update: v.ticks,
                json: Value::Object(served(&v.json, expand_evidence)),
            })
        })
        .collect()
}

/// An alert as `/api/alerts` serves it: evidence only with `$expand=evidence`. The truth is
/// served the same way, so that it compares equal to what a perfect client stored.
pub(crate) fn served(json: &Map<String, Value>, expand: bool) -> Map<String, Value> {
    let mut j = json.clone();
    if !expand {
        j.insert("evidence".into(), Value::Array(Vec::new()));
    }
    j
}
