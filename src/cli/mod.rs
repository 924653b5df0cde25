//! The command line: clap's types, and one file per command. Each command parses its arguments,
//! calls the library, and prints; the rules live in the library (`health`, `app`, `export`, …),
//! so that the service and the tests use the same ones.
//!
//! Output goes through [`outln!`], which turns a reader that closed the pipe (`status | head -1`)
//! into a normal end (exit 0) instead of println!'s panic; messages on stderr go through
//! [`errln!`], which never fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use mde_alerts::config::{Config, DEFAULT_CONFIG_PATH, ExportFormat, ExportShape};
use mde_alerts::error::Error;

/// Writes a line to standard output; `Err` (to be `?`-ed) when the reader has gone.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes a line to standard error, ignoring failure (there is nowhere left to report it).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod auth;
mod backup;
mod compare;
mod completions;
mod config_check;
mod demo;
mod export;
mod filter;
mod import;
mod poll;
mod report;
mod simulate;
mod status;
mod store;

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
`status` found a tenant unhealthy; 2 usage; 78 configuration error (systemd does not restart on it); \
130 or 143 when SIGINT or SIGTERM stopped a poll, import or compare (what was stored is kept and said).\n\n\
Start here:\n  mde-alerts demo                 see it work against the built-in simulator\n  \
mde-alerts config check         validate /etc/mde-alerts/config.toml\n  mde-alerts auth check           sign in and check the app's permissions\n  \
mde-alerts poll                 one poll and the exports that follow it\n  mde-alerts run                  the service (see systemd/mde-alerts.service)"
)]
pub(crate) struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "MDE_ALERTS_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub(crate) config: PathBuf,
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
    /// schedule's. A configured export with `mail_to` is mailed after it is written, after any
    /// mail of it still pending; a mail server that is down or refuses fails the command (exit 1)
    /// with the files written and the mail kept for the export's next run.
    Export {
        /// Only the configured export with this name (written, and mailed if it has `mail_to`).
        #[arg(long, conflicts_with_all = ["format", "out"])]
        name: Option<String>,
        /// The format of the ad-hoc file (default: from the extension of --out; CSV for `-`).
        #[arg(long, value_enum, requires = "out")]
        format: Option<ExportFormat>,
        /// Write one ad-hoc file here (only ever replacing a regular file); `-` is standard output
        /// (CSV unless --format says otherwise). The format follows the extension: .csv, .json,
        /// .ndjson/.jsonl, .xlsx, .html/.md.
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON/NDJSON of the ad-hoc file: `verbatim` (each alert as its API returned it) or
        /// `mde` (Graph alerts_v2 alerts in the MDE API's shape, for scripts written for it).
        #[arg(long, value_enum, requires = "out")]
        shape: Option<ExportShape>,
        #[command(flatten)]
        adhoc: export::AdHocArgs,
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
        #[command(flatten)]
        filter: filter::FilterArgs,
        /// Show dates, days and the window in this time zone (an IANA name such as
        /// Europe/Berlin; default UTC).
        #[arg(long, value_name = "ZONE", value_parser = report::time_zone_arg)]
        timezone: Option<chrono_tz::Tz>,
    },
    /// Read the MDE API and Graph over the same window and show what a switch to Graph changes:
    /// alerts only one API returns, and alerts whose status or severity differ (needs both
    /// permissions; the store is not touched).
    Compare {
        /// Compare only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// How far back to read.
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: Duration,
        /// Give up on the reads after this long: a side not read by then is reported as not
        /// read (with the calls it made), and nothing is compared.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print JSON: {"tenants": [{"name", "mde": {"alerts"}, "graph": {"alerts"}, "only_in_mde",
        /// "only_in_graph", "different"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Show each tenant's cursor, last runs and alert counts; exit 1 when a tenant is unhealthy (never polled, its last poll failed or made no progress, or its last success is older than [health] max_age).
    Status {
        /// Print JSON (every tenant, whatever their number).
        #[arg(long)]
        json: bool,
        /// Only this tenant.
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// Show every tenant in full, not only those that need attention (the default past ten
        /// tenants).
        #[arg(long)]
        all: bool,
    },
    /// Retention now (`prune`) and the store's soundness (`check`).
    Store {
        #[command(subcommand)]
        action: store::StoreAction,
    },
    /// Write a consistent copy of the store to PATH (SQLite's online backup) while the service
    /// keeps writing; atomically, replacing only a regular file.
    Backup {
        /// The copy's path (not the store's directory's store file itself).
        path: PathBuf,
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
    /// Print the man page (roff) to stdout, or write every page (one per subcommand) to a directory.
    Manpage {
        /// Write mde-alerts.1 and a page per subcommand (mde-alerts-poll.1, …) into this directory.
        #[arg(long, value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
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
        /// Any GUID is a tenant of its own; print (and with --write-tenants write) this many
        /// numbered tenant ids for configs (0: the one tenant).
        #[arg(long, default_value_t = 0)]
        tenants: u64,
        /// Alerts in each tenant's world with --tenants.
        #[arg(long, default_value_t = 20)]
        alerts_per_tenant: usize,
        /// Write the --tenants numbered tenants to this file as [[tenants]] tables.
        #[arg(long, requires = "tenants")]
        write_tenants: Option<PathBuf>,
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

/// Writes to standard output (see [`outln!`]).
fn write_out(args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    use std::io::Write as _;
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(Error::io("cannot write to standard output"))
}

/// Runs the command.
pub(crate) async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let path = cli.config.as_path();
    match &cli.command {
        Command::Run => {
            let config = load(path)?;
            mde_alerts::daemon::run(path, config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            write_out(format_args!("{}", completions::script(*shell)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage { dir } => {
            completions::manpages(dir.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Poll { tenant, no_export } => poll::run(path, tenant.as_deref(), !no_export).await,
        Command::Import { files, tenant } => import::run(path, files, tenant.as_deref()).await,
        Command::Export {
            name,
            format,
            out,
            shape,
            adhoc,
        } => export::run(
            path,
            name.as_deref(),
            *format,
            out.as_deref(),
            *shape,
            adhoc,
        ),
        Command::Status { json, tenant, all } => status::run(path, *json, tenant.as_deref(), *all),
        Command::Store { action } => store::run(path, action),
        Command::Backup { path: target } => backup::run(path, target),
        Command::Compare {
            tenant,
            since,
            timeout,
            json,
        } => compare::run(path, tenant.as_deref(), *since, *timeout, *json).await,
        Command::Report {
            window,
            out,
            filter,
            timezone,
        } => report::run(path, *window, out, filter, *timezone),
        Command::Auth {
            action: AuthAction::Check { tenant, show_token },
        } => auth::run(path, tenant.as_deref(), *show_token).await,
        Command::Config {
            action: ConfigAction::Check,
        } => config_check::run(path),
        Command::Demo { dir } => demo::run(dir).await,
        Command::Simulate {
            port,
            alerts,
            fault_rate,
            token_lifetime,
            mutate_every,
            tenants,
            alerts_per_tenant,
            write_tenants,
        } => {
            simulate::run(simulate::Options {
                port: *port,
                alerts: *alerts,
                fault_rate: *fault_rate,
                token_lifetime: *token_lifetime,
                mutate_every: *mutate_every,
                tenants: *tenants,
                alerts_per_tenant: *alerts_per_tenant,
                write_tenants: write_tenants.clone(),
            })
            .await
        }
    }
}

/// Reads the config.
/// Warnings grouped by their words, each with the tenants that share it, in the order first
/// seen: a situation many tenants share (the same cause, the same fix) is said once.
pub(crate) fn group<'a, W: PartialEq>(
    warnings: impl IntoIterator<Item = (&'a str, W)>,
) -> Vec<(W, Vec<&'a str>)> {
    let mut groups: Vec<(W, Vec<&'a str>)> = Vec::new();
    for (tenant, w) in warnings {
        match groups.iter_mut().find(|(g, _)| *g == w) {
            Some((_, names)) => names.push(tenant),
            None => groups.push((w, vec![tenant])),
        }
    }
    groups
}

/// The first few names of a group, and how many more (a group of 1,000 tenants is one line).
pub(crate) fn tenant_list(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

fn load(path: &Path) -> Result<Config, Error> {
    Ok(Config::load(path)?)
}

/// Prints a usage error the way clap does and returns its exit code (2).
fn usage_error(message: &str) -> ExitCode {
    let err = <Cli as clap::CommandFactory>::command()
        .error(clap::error::ErrorKind::ValueValidation, message);
    let _ = err.print();
    ExitCode::from(mde_alerts::error::EXIT_USAGE)
}

/// The exit code of a run that failed (1).
fn failed() -> ExitCode {
    ExitCode::from(mde_alerts::error::EXIT_FAILED)
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

/// Logs to stderr: text (no timestamps and no colour under journald, which adds its own) or JSON
/// lines (`[log] format = "json"`); `RUST_LOG` overrides `[log] level`.
pub(crate) fn init_logging(config: &Path) {
    use tracing_subscriber::EnvFilter;
    let log = mde_alerts::config::peek_log(config);
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
