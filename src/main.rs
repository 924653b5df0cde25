//! The `mde-alerts` command. Thin on purpose: parse the command line, call the library, print, and
//! map errors to exit codes (0 ok, 1 run failed, 2 usage, 78 configuration).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use mde_alerts::app::{self, AppError};
use mde_alerts::config::{Config, ConfigError, DEFAULT_CONFIG_PATH, ExportFormat};
use mde_alerts::{demo, export, import, sim};

/// mimalloc: parsing a backfill allocates millions of small strings and maps; glibc malloc was a
/// tenth of the import profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Export Microsoft Defender for Endpoint alerts to SQLite and CSV/JSON snapshots: every alert, in
/// its latest state, exactly once.
#[derive(Parser, Debug)]
#[command(
    name = "mde-alerts",
    version,
    about,
    long_about = None,
    after_help = "The config is read from --config, else $MDE_ALERTS_CONFIG, else /etc/mde-alerts/config.toml \
(config.example.toml documents every key).\n\nExit codes: 0 success; 1 the run failed (API, sign-in, store) or \
`status` found a tenant unhealthy; 2 usage; 78 configuration error (systemd does not restart on it).\n\n\
Start here:\n  mde-alerts demo                 see it work against the built-in simulator\n  \
mde-alerts config check         validate /etc/mde-alerts/config.toml\n  mde-alerts auth check           sign in and check the app's permissions\n  \
mde-alerts poll                 one poll and the exports that follow it\n  mde-alerts run                  the service (see systemd/mde-alerts.service)"
)]
struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "MDE_ALERTS_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run as a service: poll and export on their schedules until SIGTERM (systemd Type=notify).
    Run,
    /// Poll each tenant once now, then write the configured exports.
    Poll {
        /// Poll only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Do not write the exports afterwards.
        #[arg(long)]
        no_export: bool,
    },
    /// Load saved API responses ({"value":[…]}), JSON arrays or NDJSON into the store.
    Import {
        /// Files to import, all in one transaction.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The tenant the alerts belong to (default: the first configured).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write snapshot files from the store (no API calls).
    ///
    /// A manual export of a `scope = "changed"` export writes the delta since its last scheduled
    /// run to a timestamped file only: `-latest`, the manifest and the starting point stay the
    /// schedule's.
    Export {
        /// Only the configured export with this name.
        #[arg(long, conflicts_with_all = ["format", "out"])]
        name: Option<String>,
        /// The format of the ad-hoc file (default: from the extension of --out).
        #[arg(long, value_enum, requires = "out")]
        format: Option<ExportFormat>,
        /// Write one ad-hoc file here (only ever replacing a regular file); `-` is standard output.
        /// The format follows the extension: .csv, .json, .ndjson/.jsonl, .xlsx, .html/.md.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the nightly report (HTML and Markdown) from the store (no API calls).
    Report {
        /// "What happened in the last …": new, updated and resolved alerts in this window.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        window: Duration,
        /// A directory for report.html and report.md, a .html file (with its .md twin beside
        /// it), a .md file, or `-` for the HTML on standard output.
        #[arg(long)]
        out: PathBuf,
    },
    /// Show each tenant's cursor, last runs and alert counts; exit 1 when the last run failed.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign in and report the token's audience, permissions and expiry (never the token).
    Auth {
        #[command(subcommand)]
        action: AuthAction,
    },
    /// Check the config file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Start the built-in simulator, poll it, export, and show where the files are.
    Demo {
        /// Where to put the config, store and files.
        #[arg(long, default_value = "./mde-alerts-demo")]
        dir: PathBuf,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Manpage,
    /// Run the Defender/Entra simulator alone, for trying configs.
    Simulate {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Alerts present at start.
        #[arg(long, default_value_t = 500)]
        alerts: usize,
        /// Share of API calls answered with a fault (0.0–1.0).
        #[arg(long, default_value_t = 0.0)]
        fault_rate: f64,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 3599)]
        token_lifetime: u64,
        /// Update a few alerts and create one every this many seconds (0: never).
        #[arg(long, default_value_t = 5)]
        mutate_every: u64,
    },
}

#[derive(Subcommand, Debug)]
enum AuthAction {
    /// Get a token, explain its claims, and make one small API call; exit 0 only if a poll would
    /// work.
    Check {
        /// Check only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Also print the raw access token (it grants access to your alerts: handle with care).
        #[arg(long)]
        show_token: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Validate the config and print the resolved settings, secrets redacted.
    Check,
}

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&mde_alerts::config::peek_log(&cli.config));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = runtime.block_on(run(cli));
    // Blocking work still running (an export cut short by SIGTERM) must not hold up the exit:
    // its temp file is removed by the next export, and no -latest file is partial.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            let config_error = e.chain().any(|c| {
                c.downcast_ref::<ConfigError>().is_some()
                    || matches!(c.downcast_ref::<AppError>(), Some(AppError::Config(_)))
            });
            eprintln!("error: {e:#}");
            ExitCode::from(if config_error {
                EXIT_CONFIG
            } else {
                EXIT_FAILED
            })
        }
    }
}

/// Logs to stderr: text (no timestamps and no colour under journald, which adds its own) or JSON
/// lines (`[log] format = "json"`); `RUST_LOG` overrides `[log] level`.
fn init_logging(log: &mde_alerts::config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("warn,mde_alerts=info"));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journald && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match (log.json, journald) {
        (true, _) => builder.json().init(),
        (false, true) => builder.without_time().init(),
        (false, false) => builder.init(),
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(&cli.config)?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run => {
            let config = load(&cli)?;
            mde_alerts::daemon::run(&cli.config, config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "mde-alerts", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Poll { tenant, no_export } => {
            let config = load(&cli)?;
            let summary = app::poll(&config, tenant.as_deref(), !no_export).await?;
            for r in &summary.ok {
                println!("{r}");
            }
            for w in &summary.exported {
                println!("wrote {w}");
            }
            for (t, e) in &summary.failed {
                eprintln!("error: {t}: poll failed: {e}");
            }
            if let Some((signal, run)) = &summary.interrupted {
                match run {
                    Some(r) => eprintln!(
                        "interrupted by {signal}: {}: {} new, {} updated, {} unchanged in {} committed page{} stored before the signal; cursor {}. `status` shows the run as interrupted; the next poll continues from where this one stopped.",
                        r.tenant,
                        r.counts.new,
                        r.counts.updated,
                        r.counts.unchanged,
                        r.pages,
                        if r.pages == 1 { "" } else { "s" },
                        r.cursor_after
                            .map(|c| c.to_api_string())
                            .unwrap_or_else(|| "(none yet)".into())
                    ),
                    None => eprintln!(
                        "interrupted by {signal} before the poll started; nothing was stored"
                    ),
                }
                return Ok(ExitCode::from(signal.exit_code()));
            }
            Ok(if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        Command::Import { files, tenant } => {
            let config = load(&cli)?;
            let tenant = match tenant {
                Some(t) => config.tenant(t)?.name.clone(),
                None => config.tenants[0].name.clone(),
            };
            let _lock =
                mde_alerts::store::WriterLock::acquire(&config.store.path, app::WRITER_WAIT)?;
            let mut store = app::open_store(&config)?;
            let started = std::time::Instant::now();
            let r = import::import(&mut store, &tenant, files)?;
            let c = r.counts;
            println!(
                "{tenant}: imported {} elements in {:.2}s: {} new, {} updated, {} unchanged, {} stale, {} invalid",
                r.elements,
                started.elapsed().as_secs_f64(),
                c.new,
                c.updated,
                c.unchanged,
                c.stale,
                c.invalid
            );
            if r.same_time > 0 {
                eprintln!(
                    "warning: {} times a version replaced a different version of the same alert with the same lastUpdateTime; the one read last is the current state, and both are kept in the alert's history (the warnings above name the alerts)",
                    r.same_time
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { name, format, out } => {
            export_cmd(&cli, name.as_deref(), *format, out.as_deref())
        }
        Command::Status { json } => status(&cli, *json),
        Command::Report { window, out } => report_cmd(&cli, *window, out),
        Command::Auth {
            action: AuthAction::Check { tenant, show_token },
        } => {
            let config = load(&cli)?;
            let reports = app::auth_check(&config, tenant.as_deref(), *show_token).await?;
            let mut all_ok = true;
            for (name, r) in &reports {
                match r {
                    Err(e) => {
                        all_ok = false;
                        println!("tenant {name}: sign-in FAILED\n  {e}");
                    }
                    Ok(r) => {
                        all_ok &= r.ok();
                        print_auth(r);
                    }
                }
            }
            for (_, r) in &reports {
                if let Ok(app::AuthReport {
                    raw_token: Some(t), ..
                }) = r
                {
                    eprintln!(
                        "warning: the next line is a live access token to your Defender alerts; do not paste it anywhere you would not paste a password"
                    );
                    println!("{t}");
                }
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let config = load(&cli)?;
            print!("{config}");
            // The checks `poll` makes before it starts, so that "ok" means it will not refuse.
            config.check_ready()?;
            println!(
                "ok: the config is valid, every secret is readable, and the store and export directories can be written"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir } => {
            println!("Starting the built-in Defender simulator and polling it…");
            let report = demo::run(dir).await?;
            if let Some((signal, _)) = report.polls.iter().find_map(|p| p.interrupted.as_ref()) {
                eprintln!("demo interrupted by {signal}");
                return Ok(ExitCode::from(signal.exit_code()));
            }
            let first = report.polls.first();
            let second = report.polls.get(1);
            if let Some(p) = first {
                for r in &p.ok {
                    println!("first poll   {r}");
                }
            }
            if let Some(p) = second {
                for r in &p.ok {
                    println!("second poll  {r}");
                }
            }
            let failed: Vec<_> = report.polls.iter().flat_map(|p| &p.failed).collect();
            for (t, e) in &failed {
                eprintln!("error: {t}: {e}");
            }
            println!();
            if let Some(p) = second {
                for w in &p.exported {
                    println!("wrote {w}");
                }
            }
            let cfg = report.config.display();
            let me = invocation();
            println!(
                "\nTry next:\n  {me} --config {cfg} status\n  {me} --config {cfg} export --format ndjson --out alerts.ndjson\n  {me} --config {cfg} config check\n  {me} simulate --port 8443   # a simulator to point a config at\n\nFor a real tenant: copy config.example.toml to /etc/mde-alerts/config.toml and fill in your app registration."
            );
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        Command::Simulate {
            port,
            alerts,
            fault_rate,
            token_lifetime,
            mutate_every,
        } => {
            let cfg = sim::SimConfig {
                initial_alerts: *alerts,
                token_lifetime: Duration::from_secs(*token_lifetime),
                seed: rand::random(),
                hazards: sim::Hazards {
                    fault_rate: *fault_rate,
                    ..Default::default()
                },
                ..Default::default()
            };
            let s = sim::Simulator::start(cfg.clone(), *port)
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
            let _mutator = (*mutate_every > 0)
                .then(|| s.spawn_mutator(Duration::from_secs(*mutate_every), 3, 1));
            println!(
                "Simulator listening on {url} with {alerts} alerts. Point a config at it:\n\n[[tenants]]\nname = \"sim\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"MDE_ALERTS_CLIENT_SECRET\"   # export MDE_ALERTS_CLIENT_SECRET='{}'\nlogin_url = \"{url}\"\napi_url = \"{url}\"\n\nCtrl-C stops it.",
                cfg.tenant_id,
                cfg.client_id,
                cfg.client_secret,
                url = s.url()
            );
            tokio::signal::ctrl_c().await.ok();
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_auth(r: &app::AuthReport) {
    println!("tenant {}: signed in with {}", r.tenant, r.grant);
    if !r.claims_readable {
        // An opaque token (not a JWT): its claims cannot be read here, only the API can judge it.
        println!(
            "  claims            cannot be read: the token is opaque (not a JWT), so its audience and permissions are judged by the API probe alone"
        );
    } else {
        print_claims(r);
    }
    if let Some((subject, not_after)) = &r.certificate {
        println!(
            "  certificate       {subject}, expires {}",
            not_after.format("%Y-%m-%d")
        );
    }
    match &r.probe {
        Ok(()) => println!("  API probe         GET /api/alerts?$top=1  [ok]"),
        Err(e) => println!("  API probe         GET /api/alerts?$top=1  [PROBLEM] {e}"),
    }
    println!(
        "  verdict           {}",
        if r.ok() {
            "a poll would work"
        } else {
            "a poll would NOT work"
        }
    );
}

fn print_claims(r: &app::AuthReport) {
    let c = &r.claims;
    let s = |k: &str| c[k].as_str().unwrap_or("(absent)").to_owned();
    let mark = |ok: bool| if ok { "ok" } else { "PROBLEM" };
    println!("  tenant (tid)      {}", s("tid"));
    println!(
        "  app (appid)       {}",
        c["appid"]
            .as_str()
            .or(c["azp"].as_str())
            .unwrap_or("(absent)")
    );
    if let Some(upn) = c["upn"].as_str() {
        println!("  user (upn)        {upn}");
    }
    println!("  issuer (iss)      {}", s("iss"));
    println!(
        "  audience (aud)    {}  [{}]{}",
        s("aud"),
        mark(r.audience_ok),
        if r.audience_ok {
            ""
        } else {
            " — Defender for Endpoint needs a token for https://api.securitycenter.microsoft.com; another audience gets 403"
        }
    );
    let expiry = c["exp"]
        .as_i64()
        .and_then(|e| chrono::DateTime::<chrono::Utc>::from_timestamp(e, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "(absent)".into());
    println!(
        "  expires           {expiry} (in {} min)",
        r.expires_in_secs / 60
    );
    let kind = if c["scp"].is_string() {
        "delegated (scp)"
    } else {
        "application (roles)"
    };
    println!(
        "  permissions       {kind}: {}  [{}]{}",
        if r.permissions.is_empty() {
            "(none)".into()
        } else {
            r.permissions.join(", ")
        },
        mark(r.permission_ok),
        if r.permission_ok {
            ""
        } else {
            " — grant the WindowsDefenderATP permission Alert.Read.All (application) or Alert.Read (delegated), with admin consent"
        }
    );
}

fn status(cli: &Cli, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(cli)?;
    // Read-only: a monitoring user may read the store without being allowed to write it.
    let store = mde_alerts::store::Store::open_read_only(&config.store.path)?;
    let daemon = daemon_state(&config.store.path);
    let now = mde_alerts::time::ApiTime::now();
    let mut healthy_all = true;
    let mut out = Vec::new();
    for t in &config.tenants {
        let f = mde_alerts::metrics::tenant_figures(&store, &t.name)?;
        let runs = store.runs(Some(&t.name), 1)?;
        let last = runs.first();
        let success_age = f
            .last_success
            .map(|s| Duration::from_nanos(((now.ticks() - s.ticks()).max(0) as u64) * 100));
        let stalled = f.last_poll.as_ref().is_some_and(|p| p.outcome == "stalled");
        let (healthy, why) = match (&f.last_poll, success_age) {
            (None, _) => (false, Some("no poll has run yet".to_owned())),
            (Some(p), _) if matches!(p.outcome.as_str(), "failed" | "interrupted") => {
                (false, Some(format!("the last poll {}", p.outcome)))
            }
            (_, None) if stalled => (
                false,
                Some("no poll has made progress yet: the last one stopped at its deadline without reading anything new".to_owned()),
            ),
            (_, None) => (false, Some("no poll has succeeded yet".to_owned())),
            (_, Some(age)) if age > config.health.max_age => (
                false,
                Some(format!(
                    "the last successful poll is {} old (more than [health] max_age {}){}",
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    humantime::format_duration(config.health.max_age),
                    if stalled { "; the polls since made no progress" } else { "" }
                )),
            ),
            _ if stalled => (
                true,
                Some("the last poll made no progress (it stopped at its deadline); unhealthy if none does within [health] max_age".to_owned()),
            ),
            _ => (true, None),
        };
        healthy_all &= healthy;
        let cursor = store.cursor(&t.name)?;
        let mut by_status = serde_json::Map::new();
        let mut by_severity = serde_json::Map::new();
        let mut total = 0u64;
        for ((sev, st), n) in &f.alerts {
            total += n;
            *by_status.entry(st.clone()).or_insert(0.into()) =
                (by_status.get(st).and_then(|v| v.as_u64()).unwrap_or(0) + n).into();
            *by_severity.entry(sev.clone()).or_insert(0.into()) =
                (by_severity.get(sev).and_then(|v| v.as_u64()).unwrap_or(0) + n).into();
        }
        let next = daemon.as_ref().and_then(|d| {
            d["tenants"][&t.name]["next_poll"]
                .as_str()
                .map(str::to_owned)
        });
        out.push(serde_json::json!({
            "tenant": t.name,
            "healthy": healthy,
            "problem": why,
            "alerts": total,
            "alerts_by_status": by_status,
            "alerts_by_severity": by_severity,
            "cursor": cursor.map(|c| c.to_api_string()),
            "last_success": f.last_success.map(|s| s.to_api_string()),
            "last_success_age_secs": success_age.map(|a| a.as_secs()),
            "next_poll": next,
            "daemon_running": daemon.is_some(),
            "last_run": last.map(|r| serde_json::json!({
                "kind": r.kind,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "outcome": r.outcome,
                "api_calls": r.api_calls,
                "throttled": r.throttled,
                "waited_secs": r.waited_ms / 1000,
                "pages": r.pages,
                "new": r.counts.new,
                "updated": r.counts.updated,
                "unchanged": r.counts.unchanged,
                "stale": r.counts.stale,
                "invalid": r.counts.invalid,
                "error": r.error,
            })),
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for t in &out {
            println!(
                "{}: {} — {} alerts, cursor {}",
                t["tenant"].as_str().unwrap_or(""),
                if t["healthy"] == true {
                    "healthy"
                } else {
                    "UNHEALTHY"
                },
                t["alerts"],
                t["cursor"].as_str().unwrap_or("(none yet)")
            );
            if let Some(p) = t["problem"].as_str() {
                println!("  problem: {p}");
            }
            match t.get("last_run").filter(|r| !r.is_null()) {
                Some(r) => {
                    println!(
                        "  last {} {} at {}: {} new, {} updated, {} unchanged, {} stale, {} invalid, {} API calls ({} throttled)",
                        r["kind"].as_str().unwrap_or(""),
                        r["outcome"].as_str().unwrap_or(""),
                        r["started_at"].as_str().unwrap_or(""),
                        r["new"],
                        r["updated"],
                        r["unchanged"],
                        r["stale"],
                        r["invalid"],
                        r["api_calls"],
                        r["throttled"]
                    );
                    if let Some(e) = r["error"].as_str() {
                        println!("  error: {e}");
                    }
                }
                None => println!("  never polled"),
            }
            if let Some(s) = t["last_success"].as_str() {
                println!("  last success {s} ({}s ago)", t["last_success_age_secs"]);
            }
            let fmt_map = |m: &serde_json::Value| {
                m.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            println!("  by status: {}", fmt_map(&t["alerts_by_status"]));
            println!("  by severity: {}", fmt_map(&t["alerts_by_severity"]));
            match t["next_poll"].as_str() {
                Some(n) => println!("  next poll {n} (daemon running)"),
                None => println!("  daemon not running"),
            }
        }
    }
    Ok(if healthy_all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// How the user can run this binary again, for the lines that suggest a next command: plain
/// `mde-alerts` when that is what `PATH` finds, `cargo run --` under `cargo run` (a fresh clone has
/// no installed binary), else this binary's full path.
fn invocation() -> String {
    let me = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join("mde-alerts");
            match (
                candidate.canonicalize(),
                me.as_ref().and_then(|m| m.canonicalize().ok()),
            ) {
                (Ok(c), Some(m)) => c == m,
                _ => false,
            }
        })
    });
    if on_path {
        "mde-alerts".into()
    } else if std::env::var_os("CARGO").is_some() {
        "cargo run --".into()
    } else {
        me.map(|m| m.display().to_string())
            .unwrap_or_else(|| "mde-alerts".into())
    }
}

/// The running daemon's state file, if its process is alive.
fn daemon_state(store: &std::path::Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(mde_alerts::daemon::state_path(store)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = v["pid"].as_u64()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(v)
}

/// Prints a line to standard output. A reader that closed the pipe (`| head`) ends the output
/// normally: the error is ignored rather than a panic (println!'s behaviour).
fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints a usage error the way clap does and returns its exit code (2).
fn usage_error(message: &str) -> ExitCode {
    let err = <Cli as clap::CommandFactory>::command()
        .error(clap::error::ErrorKind::ValueValidation, message);
    let _ = err.print();
    ExitCode::from(2)
}

fn is_stdout(out: &std::path::Path) -> bool {
    out.as_os_str() == "-"
}

/// The directory a file at `out` is written in.
fn dir_of(out: &std::path::Path) -> &std::path::Path {
    out.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

/// Removes temp files that killed writers left beside an ad-hoc file. Not fatal: the directory
/// may be shared, and the file itself can still be written.
fn clean_temps_beside(out: &std::path::Path) {
    if let Err(e) = export::remove_stale_temps(dir_of(out)) {
        tracing::warn!(error = %e, "Could not remove an old temp file; writing anyway.");
    }
}

fn require_store(config: &Config) -> anyhow::Result<()> {
    if !app::store_exists(&config.store.path) {
        anyhow::bail!(
            "the store {} does not exist yet; run `mde-alerts poll` (or `import`) first",
            config.store.path.display()
        );
    }
    Ok(())
}

/// `export`: the configured exports, or one ad-hoc file (`--out PATH`, `--out -`).
fn export_cmd(
    cli: &Cli,
    name: Option<&str>,
    format: Option<ExportFormat>,
    out: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let format = match (format, out) {
        (None, Some(out)) => match export::format_for_path(out) {
            Ok(f) => Some(f),
            Err(message) => return Ok(usage_error(&message)),
        },
        (f, _) => f,
    };
    let config = load(cli)?;
    if out.is_none() {
        mde_alerts::config::check_export_dirs(&config)?;
    }
    require_store(&config)?;
    let (Some(format), Some(out)) = (format, out) else {
        for w in app::export_configured(&config, name)? {
            say(format_args!("wrote {w}"));
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Read-only: an ad-hoc file never changes the store.
    let store = mde_alerts::store::Store::open_read_only(&config.store.path)?;
    let e = mde_alerts::config::ExportConfig::ad_hoc(format);
    let sel = export::selection_for(&store, &e, &app::tenant_names(&config))?;
    if is_stdout(out) {
        if let export::Streamed::Complete(n) =
            export::write_to(&store, &e, &sel, &mut std::io::stdout().lock())?
        {
            tracing::info!(rows = n, "Wrote the export to standard output.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    clean_temps_beside(out);
    for w in export::export_file(&store, &e, &sel, out)? {
        say(format_args!("wrote {w}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `report`: the report into a directory (`report.html`, `report.md`), one file, or stdout.
fn report_cmd(cli: &Cli, window: Duration, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let ext = out
        .extension()
        .map(|x| x.to_string_lossy().to_ascii_lowercase());
    let file = match ext.as_deref() {
        _ if is_stdout(out) => None,
        Some("html" | "htm" | "md") => Some(out.to_path_buf()),
        Some(_) if !out.is_dir() => {
            return Ok(usage_error(&format!(
                "--out {} is neither a directory nor a .html or .md file; pass a directory (for report.html and report.md), a .html or .md file, or - for standard output",
                out.display()
            )));
        }
        _ => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create the directory {}", out.display()))?;
            Some(out.join("report.html"))
        }
    };
    let config = load(cli)?;
    require_store(&config)?;
    let store = mde_alerts::store::Store::open_read_only(&config.store.path)?;
    let mut e = mde_alerts::config::ExportConfig::ad_hoc(ExportFormat::Report);
    e.report_window = window;
    let sel = export::selection_for(&store, &e, &app::tenant_names(&config))?;
    let Some(file) = file else {
        export::write_to(&store, &e, &sel, &mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    };
    clean_temps_beside(&file);
    for w in export::export_file(&store, &e, &sel, &file)? {
        say(format_args!("wrote {}", w.path.display()));
    }
    Ok(ExitCode::SUCCESS)
}
