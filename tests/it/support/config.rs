//! A typed config builder: tests say what they configure with the config's own raw structs
//! ([`mde_alerts::config::raw`]), serialized with `toml`, instead of editing TOML text.

use mde_alerts::config::raw::{HumanDuration, RawConfig, RawExport, RawTenant};
use mde_alerts::config::{ExportFormat, SourceChoice};
use mde_sim::Simulator;

use super::{Env, Opts};

/// The config of a test's simulator: one tenant `t1` signing in with the client secret in the
/// file `secret`, the store `alerts.db`, a poll schedule that does not fire during a test.
pub fn base(sim: &Simulator, o: &Opts) -> RawConfig {
    let mut c = RawConfig::default();
    c.tenants.push(RawTenant {
        name: Some("t1".into()),
        tenant_id: Some(mde_sim::DEMO_TENANT_ID.into()),
        client_id: Some(mde_sim::DEMO_CLIENT_ID.into()),
        client_secret_file: Some("secret".into()),
        login_url: Some(sim.url()),
        api_url: Some(sim.url()),
        source: o.source(),
        graph_url: Some(sim.url()),
        services: o.services.clone(),
        ..RawTenant::default()
    });
    let p = &mut c.poll;
    p.schedule = Some("0 0 0 * * *".into());
    p.page_size = Some(i64::from(o.page_size));
    p.overlap = Some(duration(o.overlap));
    p.initial_lookback = Some(duration("30d"));
    p.expand_evidence = Some(o.expand);
    p.request_timeout = Some(duration("20s"));
    match o.calls_per_minute {
        Some(n) => p.calls_per_minute = Some(n),
        // The tests spend far more calls than Defender's quota, against their own simulator.
        None => {
            p.calls_per_minute = Some(100_000);
            p.calls_per_hour = Some(1_000_000);
        }
    }
    c.store.path = Some("alerts.db".into());
    if o.exports {
        c.exports
            .push(export("alerts", ExportFormat::Csv, "exports"));
        c.exports
            .push(export("alerts-json", ExportFormat::Json, "exports"));
    }
    c
}

impl Opts {
    /// The tenant's `source`: pinned to the MDE API or Graph, or left out (`auto`).
    fn source(&self) -> Option<SourceChoice> {
        match (self.auto, self.graph) {
            (true, _) => None,
            (false, true) => Some(SourceChoice::Graph),
            (false, false) => Some(SourceChoice::Mde),
        }
    }
}

/// An export block with only what every export needs.
pub fn export(name: &str, format: ExportFormat, dir: &str) -> RawExport {
    RawExport {
        name: Some(name.into()),
        format: Some(format),
        dir: Some(dir.into()),
        ..RawExport::default()
    }
}

/// A humantime duration (`"10m"`).
pub fn duration(text: &str) -> HumanDuration {
    HumanDuration(humantime::parse_duration(text).unwrap())
}

/// The file's text.
pub fn to_toml(c: &RawConfig) -> String {
    toml::to_string(c).unwrap()
}

impl Env {
    /// The config as it is on disk.
    pub fn raw_config(&self) -> RawConfig {
        toml::from_str(&std::fs::read_to_string(&self.config_path).unwrap()).unwrap()
    }

    /// Writes `c` as the config.
    pub fn write_config(&self, c: &RawConfig) {
        std::fs::write(&self.config_path, to_toml(c)).unwrap();
    }

    /// Changes the config on disk.
    pub fn edit_config(&self, change: impl FnOnce(&mut RawConfig)) {
        let mut c = self.raw_config();
        change(&mut c);
        self.write_config(&c);
    }
}

/// The text of `base` after `change`.
pub fn changed(base: &RawConfig, change: impl FnOnce(&mut RawConfig)) -> String {
    let mut c = base.clone();
    change(&mut c);
    to_toml(&c)
}
