//! `mde-alerts demo`: the product working in one minute, with no tenant.
//!
//! Starts the simulator in-process, writes a real config file for it (and a secret file, mode
//! 0600), polls, lets "analysts" work on some alerts while new ones arrive, polls again (showing
//! updates replacing versions, not duplicating rows), and exports CSV and JSON. Everything it
//! leaves in the directory is what a real installation would have, so the user can go on with
//! `--config DIR/config.toml`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::poll_job::{self, PollSummary};
use mde_sim::{Hazards, SimConfig, Simulator};

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The config file it wrote.
    pub config: PathBuf,
    /// The two polls.
    pub polls: Vec<PollSummary>,
    /// What switching the MDE tenant to Graph would change (`compare`).
    pub comparison: Option<crate::compare::TenantComparison>,
}

/// The first line of the config the demo writes: how a later demo knows the directory is its own.
const MARKER: &str = "# Written by `mde-alerts demo`";

/// Refuses a directory holding a config or store the demo did not write; clears the demo's own
/// earlier run (its store and exports), so that running the demo twice starts afresh instead of
/// mixing two simulated worlds in one store.
fn claim(dir: &Path) -> Result<(), Error> {
    let config = dir.join("config.toml");
    let store = dir.join("alerts.db");
    let ours = match std::fs::read_to_string(&config) {
        Ok(text) => text.starts_with(MARKER),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => false,
    };
    let not_ours = |what: String| Error::NotTheDemos {
        dir: dir.to_path_buf(),
        what,
    };
    if std::fs::symlink_metadata(&config).is_ok() && !ours {
        return Err(not_ours(format!("a config file ({})", config.display())));
    }
    if std::fs::symlink_metadata(&store).is_ok() && !ours {
        return Err(not_ours(format!("a store ({})", store.display())));
    }
    if ours {
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut p = store.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
        let _ = std::fs::remove_dir_all(dir.join("exports"));
    }
    Ok(())
}

/// Runs the demo in `dir`.
pub async fn run(dir: &Path) -> Result<DemoReport, Error> {
    let setup = |source| Error::Io {
        what: format!("cannot set up the demo in {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(setup)?;
    let dir = dir.canonicalize().map_err(setup)?;
    claim(&dir)?;
    let sim_cfg = SimConfig {
        initial_alerts: 300,
        history: Duration::from_secs(25 * 86_400),
        seed: rand::random(),
        hazards: Hazards {
            // A little of the real world: some faults and invalid elements, retried and reported.
            fault_rate: 0.05,
            retry_after_secs: 1,
            slow_delay: Duration::from_millis(200),
            invalid_element_rate: 0.05,
            ..Hazards::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(sim_cfg.clone(), 0).await.map_err(setup)?;
    // The app starts as most installs did: with the Defender for Endpoint API's permission only.
    sim.set_graph_roles(&[]);
    let secret_path = dir.join("client_secret");
    let _ = std::fs::remove_file(&secret_path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(setup)?;
    writeln!(f, "{}", sim_cfg.client_secret).map_err(setup)?;
    let config_path = dir.join("config.toml");
    let config_text = format!(
        r#"{MARKER}: a working config for the built-in simulator.
# For a real tenant, start from config.example.toml instead.

# No `source` line: the tenant is `auto`. It reads Microsoft Graph's security/alerts_v2 when
# its app holds Graph's SecurityAlert.Read.All, else the Defender for Endpoint API (which
# Microsoft's MC1220762 says stops on 2027-02-01), and moves by itself when that changes.
[[tenants]]
name = "demo"
tenant_id = "{tenant}"
client_id = "{client}"
auth = "client_secret"
client_secret_file = "client_secret"
# The simulator stood in for Microsoft here; it stopped when the demo ended.
login_url = "{url}"
api_url = "{url}"
graph_url = "{url}"

[poll]
schedule = "0 */5 * * * *"
initial_lookback = "30d"
overlap = "10m"
page_size = 100
expand_evidence = true

[store]
path = "alerts.db"

[[exports]]
name = "alerts"
format = "csv"
dir = "exports"

[[exports]]
name = "alerts-json"
format = "json"
dir = "exports"
"#,
        tenant = sim_cfg.tenant_id,
        client = sim_cfg.client_id,
        url = sim.url(),
    );
    std::fs::write(&config_path, config_text).map_err(setup)?;
    let config = Config::load(&config_path).map_err(Error::from)?;

    let first = poll_job::poll(&config, None, false).await?;
    if first.interrupted.is_some() {
        return Ok(DemoReport {
            config: config_path,
            polls: vec![first],
            comparison: None,
        });
    }
    // An admin grants Graph's permission; the next poll moves to Graph by itself, re-reading
    // what the two APIs may disagree on, without a config edit or a second row for any alert.
    sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    // Analysts resolve and comment on alerts, an investigation updates a batch at one instant,
    // and new alerts arrive.
    sim.update_random(20);
    sim.update_random(10);
    sim.create(7);
    let second = poll_job::poll(&config, None, true).await?;
    // What switching the MDE tenant to Graph would change, as `compare` shows it.
    let comparison =
        crate::compare::compare(&config, Some("demo"), Duration::from_secs(30 * 86_400))
            .await?
            .pop();
    Ok(DemoReport {
        config: config_path,
        polls: vec![first, second],
        comparison,
    })
}
