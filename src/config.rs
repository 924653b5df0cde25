//! The one TOML file an admin writes, turned into a typed [`Config`].
//!
//! Loading happens in two steps, so that nothing past this module handles a string where a type
//! belongs: the file is read as a TOML table, then every section is walked by hand, key by key. Doing
//! the walk ourselves rather than with `#[serde(deny_unknown_fields)]` is deliberate: it lets every
//! error name the exact key (`tenants[0].client_id`), say what was found, and give the fix — and lets an
//! unknown key suggest the key the admin probably meant. A configuration error exits with code 78
//! (`EX_CONFIG`), which the systemd unit lists in `RestartPreventExitStatus=` so a broken file does not
//! cause a restart loop.
//!
//! Secrets are not read while loading: [`TenantConfig::client_secret`] resolves them on demand, so
//! that `export` and `import`, which never talk to Microsoft, work for a user who cannot read the
//! secret.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use toml::{Table, Value};
use url::Url;

/// Where the config is looked for when neither `--config` nor `MDE_ALERTS_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mde-alerts/config.toml";
/// The resource (audience) Defender for Endpoint tokens must be issued for in commercial clouds; a
/// token for any other audience gets 403 even on the newer API host.
pub const MDE_RESOURCE: &str = "https://api.securitycenter.microsoft.com";
/// Defender keeps alerts for 180 days; asking for more only earns a 400.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(180 * 86_400);

/// A configuration problem: which key, what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {problem}\n  fix: {fix}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
pub struct ConfigError {
    /// The file the error is in, when there is one.
    pub file: Option<PathBuf>,
    /// The key, as a path (`poll.page_size`, `tenants[0].client_id`); `(file)` for the whole file.
    pub key: String,
    /// What is wrong, with what was found.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
    fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }
    /// Attaches the config file's path, for errors found after loading (secrets, `--tenant`).
    pub fn in_file_of(self, config: &Config) -> Self {
        if self.file.is_some() {
            self
        } else {
            self.in_file(&config.path)
        }
    }
}

/// The keys of each section, for the "did you mean" hint and the test that the example config
/// documents every one of them.
pub const KEYS: &[(&str, &[&str])] = &[
    ("", ROOT_KEYS),
    ("tenants", TENANT_KEYS),
    ("poll", POLL_KEYS),
    ("store", STORE_KEYS),
    ("exports", EXPORT_KEYS),
    ("http", HTTP_KEYS),
    ("health", HEALTH_KEYS),
    ("metrics", METRICS_KEYS),
    ("log", LOG_KEYS),
];
const HEALTH_KEYS: &[&str] = &["max_age"];
const METRICS_KEYS: &[&str] = &["textfile"];
const LOG_KEYS: &[&str] = &["format", "level"];
const HTTP_KEYS: &[&str] = &["proxy", "ca_file"];
const ROOT_KEYS: &[&str] = &[
    "tenants", "poll", "store", "exports", "http", "health", "metrics", "log",
];
const TENANT_KEYS: &[&str] = &[
    "name",
    "tenant_id",
    "client_id",
    "auth",
    "client_secret_env",
    "client_secret_file",
    "certificate_file",
    "private_key_file",
    "assertion_algorithm",
    "username",
    "password_env",
    "password_file",
    "cloud",
    "region",
    "login_url",
    "api_url",
    "token_endpoint",
    "schedule",
];
const POLL_KEYS: &[&str] = &[
    "schedule",
    "initial_lookback",
    "overlap",
    "page_size",
    "expand_evidence",
    "request_timeout",
    "calls_per_minute",
    "calls_per_hour",
];
const STORE_KEYS: &[&str] = &["path"];
const EXPORT_KEYS: &[&str] = &[
    "name",
    "format",
    "dir",
    "scope",
    "window",
    "min_severity",
    "statuses",
    "categories",
    "tenants",
    "columns",
    "evidence",
    "bom",
    "line_ending",
    "formula_guard",
    "schedule",
    "keep",
    "file_mode",
];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// One entry per Defender tenant.
    pub tenants: Vec<TenantConfig>,
    /// How and when to poll.
    pub poll: PollConfig,
    /// Where the SQLite store lives.
    pub store: StoreConfig,
    /// Snapshot files written after each poll and by `export`.
    pub exports: Vec<ExportConfig>,
    /// Proxy and private CA.
    pub http: HttpConfig,
    /// When `status` calls a tenant unhealthy.
    pub health: HealthConfig,
    /// The node_exporter textfile, if any.
    pub metrics_textfile: Option<PathBuf>,
    /// Logging.
    pub log: LogConfig,
}

/// When `status` (and a monitoring check running it) calls a tenant unhealthy.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// The last successful poll may be at most this old (default: three poll intervals).
    pub max_age: Duration,
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// A tracing filter (`info`, `mde_alerts=debug`, …); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            json: false,
            level: "warn,mde_alerts=info".into(),
        }
    }
}

/// Reads only the `[log]` table, leniently, so that logging can start before the whole config is
/// validated (its errors are then reported through that logging).
pub fn peek_log(path: &Path) -> LogConfig {
    let Ok(bytes) = read_small_file(path, CONFIG_FILE_CAP) else {
        return LogConfig::default();
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return LogConfig::default();
    };
    let Ok(table) = text.trim_start_matches('\u{feff}').parse::<Table>() else {
        return LogConfig::default();
    };
    let log = table.get("log").and_then(|l| l.as_table());
    let mut c = LogConfig::default();
    if let Some(l) = log {
        c.json = l.get("format").and_then(|f| f.as_str()) == Some("json");
        if let Some(level) = l.get("level").and_then(|f| f.as_str()) {
            c.level = level.to_owned();
        }
    }
    c
}

/// How to reach Microsoft: an optional proxy and an extra trusted CA.
#[derive(Clone, Default)]
pub struct HttpConfig {
    /// The proxy for every request, with its credentials split out. Without it, the standard
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` variables apply.
    pub proxy: Option<ProxyConfig>,
    /// A PEM bundle of CA certificates to trust in addition to the system's (a TLS-inspecting
    /// proxy's private CA). Certificate verification itself can never be turned off.
    pub ca_file: Option<PathBuf>,
}

/// A proxy URL without its credentials, and the credentials apart, redacted.
#[derive(Clone)]
pub struct ProxyConfig {
    /// `scheme://host:port`, no user info.
    pub url: Url,
    /// The user name, if any.
    pub username: Option<String>,
    /// The password, if any.
    pub password: Option<SecretString>,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("proxy", &self.proxy.as_ref().map(|p| p.to_string()))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl fmt::Display for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.username, &self.password) {
            (Some(u), Some(_)) => write!(f, "{} (user {u}, password redacted)", self.url),
            (Some(u), None) => write!(f, "{} (user {u})", self.url),
            _ => write!(f, "{}", self.url),
        }
    }
}

/// A short name for a tenant, used in the store, logs and `--tenant`.
pub type TenantName = String;

/// One Defender tenant and how to sign in to it.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// Where the block is in the file (`tenants[0]`), for error messages.
    pub key_prefix: String,
    /// The tenant's short name.
    pub name: TenantName,
    /// The Entra tenant: a GUID or a verified domain.
    pub tenant_id: String,
    /// The app registration's client (application) ID.
    pub client_id: String,
    /// How to sign in.
    pub auth: AuthMethod,
    /// The national cloud.
    pub cloud: Cloud,
    /// The regional API host, commercial cloud only.
    pub region: Option<Region>,
    /// Entra's host, e.g. `https://login.microsoftonline.com` (from `cloud`, or `login_url`).
    pub login_url: Url,
    /// Defender's API host, e.g. `https://api.security.microsoft.com` (from `cloud`/`region`, or
    /// `api_url`).
    pub api_url: Url,
    /// The token resource / audience.
    pub resource: String,
    /// Which Entra token endpoint to use.
    pub token_endpoint: TokenEndpoint,
    /// This tenant's own poll schedule, instead of `[poll] schedule`.
    pub schedule: Option<croner::Cron>,
}

/// Entra's two token endpoints; both issue the same Defender token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// `/{tenant}/oauth2/token` with `resource=`.
    V1,
    /// `/{tenant}/oauth2/v2.0/token` with `scope={resource}/.default`.
    V2,
}

/// How a tenant signs in.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// OAuth2 client credentials with a client secret.
    ClientSecret(SecretSource),
    /// OAuth2 client credentials with a certificate: a signed client assertion.
    Certificate {
        /// The PEM certificate (it may hold the private key too).
        certificate_file: PathBuf,
        /// The PEM private key; `None` when it is in `certificate_file`.
        private_key_file: Option<PathBuf>,
        /// How the assertion is signed.
        algorithm: AssertionAlgorithm,
    },
    /// The resource-owner password flow (delegated, as in Microsoft's "user context" sample).
    Password {
        /// The user principal name.
        username: String,
        /// Where the password comes from.
        password: SecretSource,
        /// The app's client secret, for a confidential app; public clients send none.
        client_secret: Option<SecretSource>,
    },
}

/// The client-assertion signature: Microsoft's current docs use PS256 with `x5t#S256`, older ones
/// RS256 with `x5t`; Entra accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256, header `x5t#S256`.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, header `x5t`.
    Rs256,
}

impl AuthMethod {
    /// The grant's name as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            AuthMethod::ClientSecret(_) => "client_secret",
            AuthMethod::Certificate { .. } => "certificate",
            AuthMethod::Password { .. } => "password",
        }
    }
}

/// Where a secret comes from. The secret itself is only read by [`SecretSource::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of this name.
    Env {
        /// The config key that named it.
        key: String,
        /// The variable's name.
        var: String,
    },
    /// A file holding only the secret (a trailing newline is ignored).
    File {
        /// The config key that named it.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// A systemd credential (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY/<name>`.
    Credential {
        /// The credential's name.
        name: String,
        /// The key to mention when it is missing.
        key: String,
    },
}

impl SecretSource {
    /// Reads the secret. Errors name the config key that pointed at it.
    pub fn read(&self) -> Result<SecretString, ConfigError> {
        let value = match self {
            SecretSource::Env { key, var } => std::env::var(var).map_err(|_| {
                ConfigError::new(
                    key.clone(),
                    format!("the environment variable {var} is not set (or not valid UTF-8)"),
                    format!("export {var}=<the client secret's value>, or use client_secret_file"),
                )
            })?,
            SecretSource::File { key, path } => read_secret_file(key, path)?,
            SecretSource::Credential { name, key } => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    ConfigError::new(
                        key.clone(),
                        "no client secret is configured",
                        "set client_secret_env = \"MDE_ALERTS_CLIENT_SECRET\" (and export it) or \
                         client_secret_file = \"/etc/mde-alerts/client_secret\", or pass the systemd \
                         credential `client_secret` with LoadCredential=",
                    )
                })?;
                read_secret_file(key, &Path::new(&dir).join(name))?
            }
        };
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Err(ConfigError::new(
                self.key(),
                "the secret is empty",
                "put the client secret's value (not its ID) there",
            ));
        }
        // Entra shows two columns for a secret: "Value" (once, at creation) and "Secret ID", a
        // GUID. A secret value is never GUID-shaped, so this is the usual copy-paste mistake;
        // saying so here beats Entra's AADSTS7000215 after a round trip.
        if self.key().contains("client_secret") && is_guid(trimmed.trim()) {
            return Err(ConfigError::new(
                self.key(),
                "this looks like the Secret ID (a GUID), not the secret's Value (the value is not shown)",
                "in the Entra admin center, App registrations > your app > Certificates & secrets, copy the \
                 Value column, not the Secret ID; the Value is shown only right after the secret is created, \
                 so create a new secret if it is no longer shown",
            ));
        }
        Ok(SecretString::from(trimmed.to_owned()))
    }

    fn key(&self) -> String {
        match self {
            SecretSource::Env { key, .. }
            | SecretSource::File { key, .. }
            | SecretSource::Credential { key, .. } => key.clone(),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { var, .. } => write!(f, "environment variable {var}"),
            SecretSource::File { path, .. } => write!(f, "file {}", path.display()),
            SecretSource::Credential { name, .. } => {
                write!(
                    f,
                    "systemd credential {name} ($CREDENTIALS_DIRECTORY/{name})"
                )
            }
        }
    }
}

/// Warns when a file holding a secret may be read by others than its owner.
pub fn warn_if_shared(key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Only regular files: anything else is refused when read, with its own message.
    if let Some(meta) = std::fs::metadata(path).ok().filter(|m| m.is_file()) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                key,
                file = %path.display(),
                mode = format!("{mode:o}"),
                "This secret file may be read by group or others; run `chmod 600` on it (or use a systemd credential)."
            );
        }
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    warn_if_shared(key, path);
    let bytes = read_key_file(key, path, "secret file")?;
    String::from_utf8(bytes).map_err(|_| {
        ConfigError::new(
            key,
            format!("the secret file {} is not UTF-8 text", path.display()),
            "write only the secret's value into it, as plain text",
        )
    })
}

/// The most a file holding a secret, a password or a PEM key or certificate may hold: they are
/// a few KB, and a path at something bigger is a mistake.
pub const KEY_FILE_CAP: u64 = 64 * 1024;
/// The most a CA file may hold: a bundle of a few hundred certificates.
const CA_FILE_CAP: u64 = 4 * 1024 * 1024;
/// The most the config file may hold.
const CONFIG_FILE_CAP: u64 = 1024 * 1024;

/// Why [`read_small_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is a FIFO, a device, a directory or a socket.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// It is larger than the cap.
    #[error("it holds more than {cap} bytes", cap = .0)]
    TooLarge(u64),
}

/// Reads a small regular file whole, and nothing else: a FIFO would block forever and a device
/// such as `/dev/zero` would fill memory. The file is opened with `O_NONBLOCK` (opening a FIFO
/// then does not wait for a writer), checked with `fstat` on the open descriptor (no race with a
/// rename), and read with a cap (a file may grow after `fstat`, and `/proc` files report size 0).
pub fn read_small_file(path: &Path, cap: u64) -> Result<Vec<u8>, SmallFileError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        return Err(SmallFileError::NotRegular(if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        }));
    }
    if meta.len() > cap {
        return Err(SmallFileError::TooLarge(cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(SmallFileError::TooLarge(cap));
    }
    Ok(bytes)
}

/// Reads a small file the config points at (`what`: "secret file", "certificate file", …), with
/// errors that name the key and the fix. At most [`KEY_FILE_CAP`] bytes.
pub fn read_key_file(key: &str, path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    read_capped(key, path, what, KEY_FILE_CAP)
}

fn read_capped(key: &str, path: &Path, what: &str, cap: u64) -> Result<Vec<u8>, ConfigError> {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    read_small_file(path, cap).map_err(|e| match e {
        SmallFileError::Io(e) => ConfigError::new(
            key,
            format!("cannot read the {what} {}: {e}", path.display()),
            "check the path and that the service's user may read it (mode 0600 or 0640)",
        ),
        SmallFileError::NotRegular(kind) => ConfigError::new(
            key,
            format!("the {what} {} is {kind}, not a regular file", path.display()),
            format!(
                "point {leaf} at a regular file holding only the {}; a pipe or a device would hang or never end",
                what.trim_end_matches(" file")
            ),
        ),
        SmallFileError::TooLarge(cap) => ConfigError::new(
            key,
            format!(
                "the {what} {} is larger than {} KiB, far more than it should hold",
                path.display(),
                cap / 1024
            ),
            format!(
                "point {leaf} at the file that holds only the {}",
                what.trim_end_matches(" file")
            ),
        ),
    })
}

impl TenantConfig {
    /// The full name of one of this tenant's keys (`tenants[0].certificate_file`).
    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.key_prefix)
    }

    /// Reads every secret this tenant's sign-in needs (to check they are readable).
    pub fn check_secrets(&self) -> Result<(), ConfigError> {
        match &self.auth {
            AuthMethod::ClientSecret(src) => src.read().map(drop),
            AuthMethod::Certificate { .. } => crate::auth::cert::Credential::load(self).map(drop),
            AuthMethod::Password {
                password,
                client_secret,
                ..
            } => {
                password.read()?;
                client_secret
                    .as_ref()
                    .map(SecretSource::read)
                    .transpose()
                    .map(drop)
            }
        }
    }
}

/// The national clouds: each picks the API host and the login host together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Worldwide.
    Commercial,
    /// US Government Community Cloud: gov API host, commercial login host.
    Gcc,
    /// US Government GCC High: gov API and login hosts.
    GccHigh,
    /// US Department of Defense: gov API and login hosts.
    Dod,
}

/// Regional commercial API hosts (`eu.api.security.microsoft.com`, …), faster than the global one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// United States.
    Us,
    /// European Union.
    Eu,
    /// United Kingdom.
    Uk,
    /// Australia.
    Au,
    /// Switzerland.
    Swa,
    /// India.
    Ina,
    /// United Arab Emirates.
    Aea,
}

impl Region {
    fn host_prefix(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
            Region::Uk => "uk",
            Region::Au => "au",
            Region::Swa => "swa",
            Region::Ina => "ina",
            Region::Aea => "aea",
        }
    }
}

/// How and when to poll.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// The cron schedule, with seconds, in UTC.
    pub schedule: croner::Cron,
    /// How far back the first poll of a tenant reaches (at most 180 days).
    pub initial_lookback: Duration,
    /// How far before the cursor each poll starts, to catch alerts that became visible late.
    pub overlap: Duration,
    /// `$top`: alerts per page, 1..=10000.
    pub page_size: u32,
    /// Ask for `$expand=evidence`.
    pub expand_evidence: bool,
    /// The whole-request timeout for one API or token call.
    pub request_timeout: Duration,
    /// API calls allowed per minute per tenant (Defender: 100).
    pub calls_per_minute: u32,
    /// API calls allowed per hour per tenant (Defender: 1,500).
    pub calls_per_hour: u32,
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The database file.
    pub path: PathBuf,
}

/// A configured snapshot.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The file name stem: `NAME-latest.EXT`.
    pub name: String,
    /// The file format.
    pub format: ExportFormat,
    /// The directory the files go to.
    pub dir: PathBuf,
    /// Which alerts.
    pub scope: Scope,
    /// Further filters.
    pub filter: Filter,
    /// CSV/XLSX columns, in order (API property names, plus `tenant`).
    pub columns: Vec<String>,
    /// Write evidence to `NAME-evidence` files, one row per item.
    pub evidence_separate: bool,
    /// CSV: start with a UTF-8 byte-order mark (Excel needs it for non-ASCII).
    pub bom: bool,
    /// CSV: CRLF (Excel, RFC 4180) or LF line ends.
    pub crlf: bool,
    /// CSV: neutralise cells a spreadsheet would execute.
    pub formula_guard: bool,
    /// When `mde-alerts run` writes it; `None`: after every successful poll.
    pub schedule: Option<croner::Cron>,
    /// Timestamped files to keep.
    pub keep: usize,
    /// Mode of the files written.
    pub file_mode: u32,
    /// The report's window (format `report`).
    pub report_window: Duration,
}

impl ExportConfig {
    /// An ad-hoc export (`export --format … --out …`): everything, default columns and safety.
    pub fn ad_hoc(format: ExportFormat) -> Self {
        ExportConfig {
            name: "export".into(),
            format,
            dir: PathBuf::from("."),
            scope: Scope::All,
            filter: Filter::default(),
            columns: crate::export::DEFAULT_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            evidence_separate: false,
            bom: true,
            crlf: true,
            formula_guard: true,
            schedule: None,
            keep: 10,
            file_mode: 0o640,
            report_window: Duration::from_secs(86_400),
        }
    }
}

/// Which alerts an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every alert.
    All,
    /// Alerts whose status is not `Resolved`.
    Open,
    /// Alerts updated within this long before the export.
    Window(Duration),
    /// Alerts new or changed in the store since this export last ran.
    Changed,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Open => f.write_str("open"),
            Scope::Window(d) => write!(f, "window {}", humantime::format_duration(*d)),
            Scope::Changed => f.write_str("changed"),
        }
    }
}

/// Filters on the indexed fields. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this severity and above (`Informational` < `Low` < `Medium` < `High`; values newer
    /// than this list count as above, so they are never silently dropped).
    pub min_severity: Option<u8>,
    /// Only these statuses.
    pub statuses: Vec<String>,
    /// Only these categories.
    pub categories: Vec<String>,
    /// Only these tenants (names from `[[tenants]]`).
    pub tenants: Vec<String>,
}

/// Snapshot file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Spreadsheet-safe CSV, one row per alert.
    Csv,
    /// A JSON array of the alerts exactly as the API returned them.
    Json,
    /// One alert object per line.
    Ndjson,
    /// An Excel workbook: alerts with date cells, and counts by severity and status.
    Xlsx,
    /// The nightly report: a self-contained HTML page and the same numbers in Markdown.
    Report,
}

impl ExportFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Report => "html",
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = read_small_file(path, CONFIG_FILE_CAP).map_err(|e| {
            let fix = match &e {
                SmallFileError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    "create it from config.example.toml, or point --config / MDE_ALERTS_CONFIG at yours"
                }
                SmallFileError::Io(_) => "check the path and the file's permissions",
                _ => "point --config / MDE_ALERTS_CONFIG at the TOML file (config.example.toml documents it)",
            };
            ConfigError::new("(file)", format!("cannot read the config file: {e}"), fix)
                .in_file(path)
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            ConfigError::new(
                "(file)",
                format!(
                    "the config file is not UTF-8 text (at byte {})",
                    e.utf8_error().valid_up_to()
                ),
                "save it as UTF-8",
            )
            .in_file(path)
        })?;
        // Windows editors may start the file with a byte-order mark, which TOML does not allow.
        Self::parse(text.trim_start_matches('\u{feff}'), path).map_err(|e| e.in_file(path))
    }

    /// Validates config text; relative paths are taken from `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(
                "(syntax)",
                format!(
                    "the file is not valid TOML: {}",
                    redact_snippet(e.to_string().trim_end())
                ),
                "fix the syntax at the line shown; config.example.toml has a working example",
            )
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let root = Section {
            path: String::new(),
            table: &table,
        };
        root.check_keys(ROOT_KEYS)?;

        let tenants = root
            .array_of_tables("tenants")?
            .iter()
            .map(|s| tenant(s, base))
            .collect::<Result<Vec<_>, _>>()?;
        if tenants.is_empty() {
            return Err(ConfigError::new(
                "tenants",
                "no tenant is configured",
                "add a [[tenants]] block with name, tenant_id and client_id",
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in tenants.iter().enumerate() {
            if !seen.insert(t.name.clone()) {
                return Err(ConfigError::new(
                    format!("tenants[{i}].name"),
                    format!("the name {:?} is used by two tenants", t.name),
                    "give every tenant its own name",
                ));
            }
        }
        // Quotas above Defender's are accepted only when every tenant talks to a local simulator.
        let loopback_only = tenants.iter().all(|t| is_loopback(&t.api_url));
        let poll = poll(&root.table_or_empty("poll")?, loopback_only)?;
        let http = http(&root.table_or_empty("http")?, base)?;
        let health = {
            let owned = root.table_or_empty("health")?;
            let s = owned.borrow();
            s.check_keys(HEALTH_KEYS)?;
            let interval = cron_interval(&poll.schedule);
            HealthConfig {
                max_age: s.duration("max_age")?.unwrap_or(interval * 3),
            }
        };
        let metrics_textfile = {
            let owned = root.table_or_empty("metrics")?;
            let s = owned.borrow();
            s.check_keys(METRICS_KEYS)?;
            s.path("textfile", base)?
        };
        let log = {
            let owned = root.table_or_empty("log")?;
            let s = owned.borrow();
            s.check_keys(LOG_KEYS)?;
            let json = s.choice("format", &[("text", false), ("json", true)], false)?;
            let level = match s.str("level")? {
                None => LogConfig::default().level,
                Some(l) => {
                    tracing_subscriber::EnvFilter::try_new(l).map_err(|e| {
                        ConfigError::new(
                            s.key("level"),
                            format!("{l:?} is not a log filter ({e})"),
                            "use error | warn | info | debug | trace, or a filter like \"warn,mde_alerts=debug\"",
                        )
                    })?;
                    l.to_owned()
                }
            };
            LogConfig { json, level }
        };
        let store = store(&root.table_or_empty("store")?, base)?;
        let exports = root
            .array_of_tables("exports")?
            .iter()
            .map(|s| export(s, base, &tenants))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = HashSet::new();
        for (i, e) in exports.iter().enumerate() {
            if !seen.insert(e.name.clone()) {
                return Err(ConfigError::new(
                    format!("exports[{i}].name"),
                    format!("the name {:?} is used by two exports", e.name),
                    "give every export its own name",
                ));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            tenants,
            poll,
            store,
            exports,
            http,
            health,
            metrics_textfile,
            log,
        })
    }

    /// The tenant called `name`, or an error listing the configured ones.
    pub fn tenant(&self, name: &str) -> Result<&TenantConfig, ConfigError> {
        self.tenants.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<_> = self.tenants.iter().map(|t| t.name.as_str()).collect();
            ConfigError::new(
                "--tenant",
                format!("no tenant is called {name:?}"),
                format!("use one of: {}", names.join(", ")),
            )
            .in_file(&self.path)
        })
    }
}

/// A TOML table being read, with its path for error messages.
struct Section<'a> {
    path: String,
    table: &'a Table,
}

/// An owned section (for tables that may be absent).
struct OwnedSection {
    path: String,
    table: Table,
}

impl OwnedSection {
    fn borrow(&self) -> Section<'_> {
        Section {
            path: self.path.clone(),
            table: &self.table,
        }
    }
}

impl std::ops::Deref for OwnedSection {
    type Target = Table;
    fn deref(&self) -> &Table {
        &self.table
    }
}

fn type_name(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
    }
}

impl<'a> Section<'a> {
    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    /// Rejects keys this section does not know, suggesting the closest known one.
    fn check_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        for k in self.table.keys() {
            if !known.contains(&k.as_str()) {
                let best = known
                    .iter()
                    .map(|c| (strsim::damerau_levenshtein(&k.to_lowercase(), c), *c))
                    .min();
                let fix = match best {
                    Some((d, c)) if d <= 3 || c.contains(k.as_str()) => {
                        format!("did you mean `{c}`?")
                    }
                    _ => format!("remove it; the keys allowed here are: {}", known.join(", ")),
                };
                return Err(ConfigError::new(self.key(k), "unknown key", fix));
            }
        }
        Ok(())
    }

    fn wrong_type(&self, k: &str, v: &Value, expected: &str) -> ConfigError {
        ConfigError::new(
            self.key(k),
            format!("expected {expected}, found {}", type_name(v)),
            format!("write it as {expected}"),
        )
    }

    fn str(&self, k: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.table.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.wrong_type(k, v, "a quoted string")),
        }
    }

    fn required_str(&self, k: &str, fix: &str) -> Result<&'a str, ConfigError> {
        match self.str(k)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ConfigError::new(self.key(k), "is empty", fix)),
            None => Err(ConfigError::new(self.key(k), "is missing", fix)),
        }
    }

    fn int(&self, k: &str) -> Result<Option<i64>, ConfigError> {
        match self.table.get(k) {
            None => Ok(None),
            Some(Value::Integer(i)) => Ok(Some(*i)),
            Some(v) => Err(self.wrong_type(k, v, "an integer (no quotes)")),
        }
    }

    fn bool(&self, k: &str) -> Result<Option<bool>, ConfigError> {
        match self.table.get(k) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(k, v, "true or false (no quotes)")),
        }
    }

    fn duration(&self, k: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(s) = self.str(k)? else {
            return Ok(None);
        };
        humantime::parse_duration(s).map(Some).map_err(|e| {
            ConfigError::new(
                self.key(k),
                format!("{s:?} is not a duration ({e})"),
                "write a number with a unit, e.g. \"90s\", \"10m\", \"12h\", \"30d\"",
            )
        })
    }

    fn choice<T: Copy>(
        &self,
        k: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(s) = self.str(k)? else {
            return Ok(default);
        };
        options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
                ConfigError::new(
                    self.key(k),
                    format!("{s:?} is not one of the allowed values"),
                    format!("use one of: {}", names.join(" | ")),
                )
            })
    }

    fn path(&self, k: &str, base: &Path) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.str(k)?.map(|s| base.join(s)))
    }

    fn url(&self, k: &str) -> Result<Option<Url>, ConfigError> {
        let Some(s) = self.str(k)? else {
            return Ok(None);
        };
        parse_endpoint_url(s)
            .map(Some)
            .map_err(|(problem, fix)| ConfigError::new(self.key(k), problem, fix))
    }

    fn table_or_empty(&self, k: &str) -> Result<OwnedSection, ConfigError> {
        let table = match self.table.get(k) {
            None => Table::new(),
            Some(Value::Table(t)) => t.clone(),
            Some(v) => {
                return Err(ConfigError::new(
                    self.key(k),
                    format!("expected a [{k}] table, found {}", type_name(v)),
                    format!("write it as a [{k}] section"),
                ));
            }
        };
        Ok(OwnedSection {
            path: self.key(k),
            table,
        })
    }

    fn array_of_tables(&self, k: &str) -> Result<Vec<Section<'a>>, ConfigError> {
        match self.table.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Table(t) => Ok(Section {
                        path: format!("{}[{i}]", self.key(k)),
                        table: t,
                    }),
                    other => Err(self.wrong_type(k, other, &format!("[[{k}]] blocks"))),
                })
                .collect(),
            Some(v) => Err(ConfigError::new(
                self.key(k),
                format!("expected [[{k}]] blocks, found {}", type_name(v)),
                format!("write each one as a [[{k}]] block"),
            )),
        }
    }
}

/// Accepts `https://` anywhere and `http://` only for loopback (simulators, local proxies).
fn parse_endpoint_url(s: &str) -> Result<Url, (String, String)> {
    let url = Url::parse(s).map_err(|e| {
        (
            format!("{s:?} is not a URL ({e})"),
            "write a full URL such as \"https://api.security.microsoft.com\"".to_owned(),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err((
            "the URL carries credentials".into(),
            "remove user:password from the URL".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err((
            "the URL has a query or fragment".into(),
            "give only scheme, host, port and path".into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err((
            format!("{s:?} uses plain http:// to a host that is not loopback"),
            "use https://; http:// is accepted only for 127.0.0.1, ::1 or localhost (simulators)"
                .into(),
        )),
        other => Err((
            format!("the scheme {other}:// is not supported"),
            "use https://".into(),
        )),
    }
}

/// Whether the URL points at this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<_> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A DNS name such as `contoso.onmicrosoft.com`: it becomes part of the token URL's path, so
/// nothing else (`/`, `..`, spaces) may get there.
fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && !labels
            .last()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
}

/// The GUID config.example.toml ships with.
const PLACEHOLDER_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Removes what may be secret from a TOML error's snippet of the file: the user info of URLs
/// (`http://user:password@proxy`) and the value of any key about a secret or a password.
fn redact_snippet(text: &str) -> String {
    text.lines()
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            let mut line = line.to_owned();
            if (lower.contains("secret") || lower.contains("password"))
                && let Some(eq) = line.find('=')
            {
                line.truncate(eq + 1);
                line.push_str(" [redacted]");
            }
            redact_userinfo(&line)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `scheme://user:password@host` → `scheme://[redacted]@host`, anywhere in `line`.
fn redact_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\'' | '?' | '#'))
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str("[redacted]");
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    out
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn tenant(s: &Section<'_>, base: &Path) -> Result<TenantConfig, ConfigError> {
    s.check_keys(TENANT_KEYS)?;
    let name = s.required_str(
        "name",
        "give the tenant a short name, e.g. name = \"contoso\"",
    )?;
    if !valid_name(name) {
        return Err(ConfigError::new(
            s.key("name"),
            format!("{name:?} is not a valid name"),
            "use letters, digits, - and _ only (at most 64)",
        ));
    }
    let tenant_id = s.required_str(
        "tenant_id",
        "copy the Directory (tenant) ID from the app registration's overview in the Entra admin center",
    )?;
    if !is_guid(tenant_id) && !is_domain(tenant_id) {
        return Err(ConfigError::new(
            s.key("tenant_id"),
            format!("{tenant_id:?} is neither a GUID nor a domain name"),
            "use the Directory (tenant) ID, e.g. 00000000-0000-0000-0000-000000000000, or a verified \
             domain such as contoso.onmicrosoft.com",
        ));
    }
    let client_id = s.required_str(
        "client_id",
        "copy the Application (client) ID from the app registration's overview",
    )?;
    if !is_guid(client_id) {
        return Err(ConfigError::new(
            s.key("client_id"),
            format!("{client_id:?} is not a GUID"),
            "use the Application (client) ID, e.g. 00000000-0000-0000-0000-000000000000",
        ));
    }
    let auth_kind = s.str("auth")?.unwrap_or("client_secret");
    let only_for = |keys: &[&str], method: &str| -> Result<(), ConfigError> {
        for k in keys {
            if s.table.contains_key(*k) {
                return Err(ConfigError::new(
                    s.key(k),
                    format!("is only used with auth = \"{method}\", but auth = \"{auth_kind}\""),
                    format!("remove it, or set auth = \"{method}\""),
                ));
            }
        }
        Ok(())
    };
    const CERT_KEYS: &[&str] = &[
        "certificate_file",
        "private_key_file",
        "assertion_algorithm",
    ];
    const PASSWORD_KEYS: &[&str] = &["username", "password_env", "password_file"];
    let auth = match auth_kind {
        "client_secret" => {
            only_for(CERT_KEYS, "certificate")?;
            only_for(PASSWORD_KEYS, "password")?;
            AuthMethod::ClientSecret(
                secret_source(s, base, "client_secret", true)?.expect("required source"),
            )
        }
        "certificate" => {
            only_for(PASSWORD_KEYS, "password")?;
            only_for(
                &["client_secret_env", "client_secret_file"],
                "client_secret",
            )?;
            let certificate_file = s.path("certificate_file", base)?.ok_or_else(|| {
                ConfigError::new(
                    s.key("certificate_file"),
                    "is missing",
                    "name the PEM file of the certificate uploaded to the app registration \
                     (it may hold the private key too)",
                )
            })?;
            AuthMethod::Certificate {
                certificate_file,
                private_key_file: s.path("private_key_file", base)?,
                algorithm: s.choice(
                    "assertion_algorithm",
                    &[
                        ("PS256", AssertionAlgorithm::Ps256),
                        ("RS256", AssertionAlgorithm::Rs256),
                    ],
                    AssertionAlgorithm::Ps256,
                )?,
            }
        }
        "password" => {
            only_for(CERT_KEYS, "certificate")?;
            let username = s.required_str(
                "username",
                "give the user principal name, e.g. username = \"svc-mde@contoso.com\"",
            )?;
            if !username.contains('@') {
                return Err(ConfigError::new(
                    s.key("username"),
                    format!("{username:?} is not a user principal name"),
                    "use the UPN, e.g. svc-mde@contoso.com",
                ));
            }
            AuthMethod::Password {
                username: username.to_owned(),
                password: secret_source(s, base, "password", true)?.expect("required source"),
                client_secret: secret_source(s, base, "client_secret", false)?,
            }
        }
        other => {
            return Err(ConfigError::new(
                s.key("auth"),
                format!("{other:?} is not a sign-in method"),
                "use one of: client_secret | certificate | password",
            ));
        }
    };
    let cloud = s.choice(
        "cloud",
        &[
            ("commercial", Cloud::Commercial),
            ("gcc", Cloud::Gcc),
            ("gcc-high", Cloud::GccHigh),
            ("dod", Cloud::Dod),
        ],
        Cloud::Commercial,
    )?;
    let region = match s.str("region")? {
        None => None,
        Some(_) => Some(s.choice(
            "region",
            &[
                ("us", Region::Us),
                ("eu", Region::Eu),
                ("uk", Region::Uk),
                ("au", Region::Au),
                ("swa", Region::Swa),
                ("ina", Region::Ina),
                ("aea", Region::Aea),
            ],
            Region::Us,
        )?),
    };
    if region.is_some() && cloud != Cloud::Commercial {
        return Err(ConfigError::new(
            s.key("region"),
            "regional hosts exist only in the commercial cloud",
            "remove region, or set cloud = \"commercial\"",
        ));
    }
    let token_endpoint = s.choice(
        "token_endpoint",
        &[("v2", TokenEndpoint::V2), ("v1", TokenEndpoint::V1)],
        TokenEndpoint::V2,
    )?;
    let (login_default, api_default, resource) = match cloud {
        Cloud::Commercial => {
            let api = match region {
                Some(r) => format!("https://{}.api.security.microsoft.com", r.host_prefix()),
                None => "https://api.security.microsoft.com".to_owned(),
            };
            ("https://login.microsoftonline.com", api, MDE_RESOURCE)
        }
        Cloud::Gcc => (
            "https://login.microsoftonline.com",
            "https://api-gcc.securitycenter.microsoft.us".to_owned(),
            "https://api-gcc.securitycenter.microsoft.us",
        ),
        Cloud::GccHigh | Cloud::Dod => (
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us".to_owned(),
            "https://api-gov.securitycenter.microsoft.us",
        ),
    };
    let login_url = match s.url("login_url")? {
        Some(u) => u,
        None => Url::parse(login_default).expect("built-in URL"),
    };
    let api_url = match s.url("api_url")? {
        Some(u) => u,
        None => Url::parse(&api_default).expect("built-in URL"),
    };
    let schedule = match s.str("schedule")? {
        None => None,
        Some(text) => Some(schedule(
            s,
            "schedule",
            text,
            "write six fields, seconds first, in UTC, e.g. \"0 */5 * * * *\"; leave it out to use [poll] schedule",
        )?),
    };
    Ok(TenantConfig {
        schedule,
        key_prefix: s.path.clone(),
        name: name.to_owned(),
        tenant_id: tenant_id.to_owned(),
        client_id: client_id.to_ascii_lowercase(),
        auth,
        cloud,
        region,
        login_url,
        api_url,
        resource: resource.to_owned(),
        token_endpoint,
    })
}

/// Parses a cron schedule: six fields with seconds (five are accepted, seconds = 0), UTC.
pub fn parse_cron(text: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
}

/// A schedule must fire within this long: one that does not (`0 0 0 30 2 *`, 30 February) would
/// leave the service waiting for ever without a word.
const SCHEDULE_HORIZON: chrono::Duration = chrono::Duration::days(5 * 366);

/// The schedule at key `k`: a valid cron expression that fires within five years.
fn schedule(s: &Section<'_>, k: &str, text: &str, fix: &str) -> Result<croner::Cron, ConfigError> {
    let cron = parse_cron(text).map_err(|err| {
        ConfigError::new(
            s.key(k),
            format!("{text:?} is not a cron schedule ({err})"),
            fix,
        )
    })?;
    let now = chrono::Utc::now();
    match cron.find_next_occurrence(&now, false) {
        Ok(next) if next - now <= SCHEDULE_HORIZON => Ok(cron),
        _ => Err(ConfigError::new(
            s.key(k),
            format!(
                "{text:?} never fires: no time in the next five years matches it (a day that does not exist, such as 30 February?)"
            ),
            fix,
        )),
    }
}

/// The typical gap between two firings of `cron` (the shortest of the next few).
pub fn cron_interval(cron: &croner::Cron) -> Duration {
    let now = chrono::Utc::now();
    let times: Vec<_> = cron.iter_after(now).take(4).collect();
    times
        .windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .min()
        .unwrap_or(Duration::from_secs(300))
}

/// `NAME_env` or `NAME_file`, else the systemd credential `NAME` (when `required`).
fn secret_source(
    s: &Section<'_>,
    base: &Path,
    name: &str,
    required: bool,
) -> Result<Option<SecretSource>, ConfigError> {
    let env_key = format!("{name}_env");
    let file_key = format!("{name}_file");
    match (s.str(&env_key)?, s.str(&file_key)?) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            s.key(&file_key),
            format!("both {env_key} and {file_key} are set"),
            "keep one of them",
        )),
        (Some(var), None) => {
            let valid = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                // Not echoed: the usual mistake is pasting the secret itself here.
                return Err(ConfigError::new(
                    s.key(&env_key),
                    "is not the name of an environment variable (the value is not shown, in case it is the secret itself)",
                    format!(
                        "put the {name} in an environment variable and write that variable's name here, e.g. {env_key} = \"MDE_ALERTS_{}\"",
                        name.to_ascii_uppercase()
                    ),
                ));
            }
            Ok(Some(SecretSource::Env {
                key: s.key(&env_key),
                var: var.to_owned(),
            }))
        }
        (None, Some(file)) => {
            let path = base.join(file);
            if !file.contains('/') && !path.exists() {
                // A bare word that names no file may well be a pasted secret: not echoed.
                return Err(ConfigError::new(
                    s.key(&file_key),
                    "names no existing file (the value is not shown, in case it is the secret itself)",
                    format!(
                        "write the path of a file that holds only the {name}, e.g. \"/etc/mde-alerts/{name}\""
                    ),
                ));
            }
            Ok(Some(SecretSource::File {
                key: s.key(&file_key),
                path,
            }))
        }
        (None, None) if required => Ok(Some(SecretSource::Credential {
            name: name.to_owned(),
            key: s.key(&env_key),
        })),
        (None, None) => Ok(None),
    }
}

fn http(owned: &OwnedSection, base: &Path) -> Result<HttpConfig, ConfigError> {
    let s = owned.borrow();
    s.check_keys(HTTP_KEYS)?;
    let proxy = match s.str("proxy")? {
        None => None,
        Some(text) => {
            let mut url = Url::parse(text).map_err(|e| {
                ConfigError::new(
                    s.key("proxy"),
                    format!("not a URL ({e})"),
                    "write it as \"http://host:port\" or \"http://user:password@host:port\"",
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError::new(
                    s.key("proxy"),
                    format!(
                        "the proxy must be http:// or https:// with a host, not {}://",
                        url.scheme()
                    ),
                    "write it as \"http://host:port\"",
                ));
            }
            let username = (!url.username().is_empty()).then(|| percent_decode(url.username()));
            let password = url
                .password()
                .map(|p| SecretString::from(percent_decode(p)));
            let _ = url.set_username("");
            let _ = url.set_password(None);
            Some(ProxyConfig {
                url,
                username,
                password,
            })
        }
    };
    let ca_file = s.path("ca_file", base)?;
    if let Some(p) = &ca_file {
        let pem = read_capped(&s.key("ca_file"), p, "CA file", CA_FILE_CAP)?;
        if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
            return Err(ConfigError::new(
                s.key("ca_file"),
                format!("{} holds no PEM certificate", p.display()),
                "export the proxy's CA certificate in PEM (-----BEGIN CERTIFICATE-----)",
            ));
        }
    }
    Ok(HttpConfig { proxy, ca_file })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn poll(owned: &OwnedSection, loopback_only: bool) -> Result<PollConfig, ConfigError> {
    let s = owned.borrow();
    s.check_keys(POLL_KEYS)?;
    let schedule_text = s.str("schedule")?.unwrap_or("0 */5 * * * *");
    let schedule = schedule(
        &s,
        "schedule",
        schedule_text,
        "write six fields, seconds first, in UTC: \"0 */5 * * * *\" polls every five minutes",
    )?;
    let mut initial_lookback = s
        .duration("initial_lookback")?
        .unwrap_or(Duration::from_secs(30 * 86_400));
    if initial_lookback.is_zero() {
        return Err(ConfigError::new(
            s.key("initial_lookback"),
            "must be more than zero",
            "use e.g. \"30d\"",
        ));
    }
    if initial_lookback > MAX_LOOKBACK {
        tracing::warn!(
            key = %s.key("initial_lookback"),
            "Defender keeps alerts for 180 days; the first poll will reach back 180 days."
        );
        initial_lookback = MAX_LOOKBACK;
    }
    let overlap = s.duration("overlap")?.unwrap_or(Duration::from_secs(600));
    if overlap > Duration::from_secs(86_400) {
        return Err(ConfigError::new(
            s.key("overlap"),
            "is longer than a day",
            "the overlap only needs to cover Defender's ingestion delay; \"10m\" is plenty",
        ));
    }
    let page_size = match s.int("page_size")? {
        None => 10_000,
        Some(n @ 1..=10_000) => n as u32,
        Some(n) => {
            return Err(ConfigError::new(
                s.key("page_size"),
                format!("{n} is out of range"),
                "use a number from 1 to 10000 (Defender's maximum $top)",
            ));
        }
    };
    let request_timeout = s
        .duration("request_timeout")?
        .unwrap_or(Duration::from_secs(120));
    if request_timeout < Duration::from_secs(1) {
        return Err(ConfigError::new(
            s.key("request_timeout"),
            "is shorter than a second",
            "a page of 10,000 alerts can take a minute; use e.g. \"120s\"",
        ));
    }
    let quota = |k: &str, max: u32| -> Result<u32, ConfigError> {
        match s.int(k)? {
            None => Ok(max),
            Some(n) if (1..=i64::from(max)).contains(&n) => Ok(n as u32),
            // Above Defender's quota only makes sense against a simulator or private endpoint.
            Some(n) if (1..=1_000_000).contains(&n) && loopback_only => Ok(n as u32),
            Some(n) => Err(ConfigError::new(
                s.key(k),
                format!("{n} is out of range"),
                format!(
                    "use 1 to {max} (Defender's quota); set it lower when other tools share the app"
                ),
            )),
        }
    };
    let calls_per_minute = quota("calls_per_minute", crate::budget::DEFENDER_PER_MINUTE)?;
    let calls_per_hour = quota("calls_per_hour", crate::budget::DEFENDER_PER_HOUR)?;
    Ok(PollConfig {
        calls_per_minute,
        calls_per_hour,
        schedule,
        initial_lookback,
        overlap,
        page_size,
        expand_evidence: s.bool("expand_evidence")?.unwrap_or(false),
        request_timeout,
    })
}

fn store(owned: &OwnedSection, base: &Path) -> Result<StoreConfig, ConfigError> {
    let s = owned.borrow();
    s.check_keys(STORE_KEYS)?;
    let path = s
        .path("path", base)?
        .unwrap_or_else(|| PathBuf::from("/var/lib/mde-alerts/alerts.db"));
    Ok(StoreConfig { path })
}

fn string_list(s: &Section<'_>, k: &str) -> Result<Vec<String>, ConfigError> {
    match s.table.get(k) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(x) => Ok(x.clone()),
                other => {
                    Err(s.wrong_type(k, other, "a list of quoted strings, e.g. [\"a\", \"b\"]"))
                }
            })
            .collect(),
        Some(v) => Err(s.wrong_type(k, v, "a list of quoted strings, e.g. [\"a\", \"b\"]")),
    }
}

fn export(
    s: &Section<'_>,
    base: &Path,
    tenants: &[TenantConfig],
) -> Result<ExportConfig, ConfigError> {
    s.check_keys(EXPORT_KEYS)?;
    let name = s.required_str(
        "name",
        "give the export a name; files are called NAME-latest.EXT",
    )?;
    if !valid_name(name) {
        return Err(ConfigError::new(
            s.key("name"),
            format!("{name:?} is not a valid name"),
            "use letters, digits, - and _ only (it becomes part of file names)",
        ));
    }
    let format = match s.str("format")? {
        None => {
            return Err(ConfigError::new(
                s.key("format"),
                "is missing",
                "use one of: csv | json | ndjson | xlsx | report",
            ));
        }
        Some(_) => s.choice(
            "format",
            &[
                ("csv", ExportFormat::Csv),
                ("json", ExportFormat::Json),
                ("ndjson", ExportFormat::Ndjson),
                ("xlsx", ExportFormat::Xlsx),
                ("report", ExportFormat::Report),
            ],
            ExportFormat::Csv,
        )?,
    };
    let dir = s.path("dir", base)?.ok_or_else(|| {
        ConfigError::new(
            s.key("dir"),
            "is missing",
            "name the directory the files go to, e.g. dir = \"/var/lib/mde-alerts/exports\"",
        )
    })?;
    let mut e = ExportConfig {
        name: name.to_owned(),
        dir,
        ..ExportConfig::ad_hoc(format)
    };
    let window = s.duration("window")?;
    if window.is_some_and(|w| w.is_zero()) {
        return Err(ConfigError::new(
            s.key("window"),
            "must be more than zero",
            "use e.g. \"24h\"",
        ));
    }
    if format == ExportFormat::Report {
        e.report_window = window.unwrap_or(Duration::from_secs(86_400));
    }
    e.scope = match s.str("scope")? {
        None | Some("all") => Scope::All,
        Some("open") => Scope::Open,
        Some("changed") => Scope::Changed,
        Some("window") => Scope::Window(window.ok_or_else(|| {
            ConfigError::new(
                s.key("window"),
                "is missing (scope = \"window\" needs it)",
                "add window = \"24h\" (alerts updated within the last 24 hours)",
            )
        })?),
        Some(other) => {
            return Err(ConfigError::new(
                s.key("scope"),
                format!("{other:?} is not a scope"),
                "use one of: all | open | window (with window = \"24h\") | changed",
            ));
        }
    };
    if window.is_some() && !matches!(e.scope, Scope::Window(_)) && format != ExportFormat::Report {
        return Err(ConfigError::new(
            s.key("window"),
            "is only used with scope = \"window\" or format = \"report\"",
            "remove it, or set scope = \"window\"",
        ));
    }
    if let Some(sev) = s.str("min_severity")? {
        let known = ["Informational", "Low", "Medium", "High"];
        let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(sev)) else {
            return Err(ConfigError::new(
                s.key("min_severity"),
                format!("{sev:?} is not a severity"),
                "use one of: Informational | Low | Medium | High",
            ));
        };
        e.filter.min_severity = Some(crate::alert::vocab::Severity::parse(k).rank());
    }
    e.filter.statuses = string_list(s, "statuses")?;
    e.filter.categories = string_list(s, "categories")?;
    e.filter.tenants = string_list(s, "tenants")?;
    for t in &e.filter.tenants {
        if !tenants.iter().any(|x| &x.name == t) {
            let names: Vec<_> = tenants.iter().map(|x| x.name.as_str()).collect();
            return Err(ConfigError::new(
                s.key("tenants"),
                format!("no tenant is called {t:?}"),
                format!("use names from [[tenants]]: {}", names.join(", ")),
            ));
        }
    }
    if s.table.contains_key("columns") {
        let cols = string_list(s, "columns")?;
        if cols.is_empty() {
            return Err(ConfigError::new(
                s.key("columns"),
                "is empty",
                "list at least one column, or remove the key for the default columns",
            ));
        }
        for c in &cols {
            // Any property path is a column (fields Microsoft adds later, old-schema fields);
            // a name close to a known one only warns.
            match crate::export::table::check_column(c) {
                Err(problem) => {
                    let fix = "write an API property name or a dotted path into one, e.g. \"relatedUser.userName\"";
                    return Err(ConfigError::new(s.key("columns"), problem, fix));
                }
                Ok(Some(hint)) => tracing::warn!(key = %s.key("columns"), "{hint}"),
                Ok(None) => {}
            }
        }
        e.columns = cols;
    }
    e.evidence_separate = match s.str("evidence")? {
        None | Some("omit") => false,
        Some("separate") => true,
        Some(other) => {
            return Err(ConfigError::new(
                s.key("evidence"),
                format!("{other:?} is not an evidence mode"),
                "use \"separate\" (a NAME-evidence file, one row per item) or \"omit\"",
            ));
        }
    };
    if e.evidence_separate && !matches!(format, ExportFormat::Csv | ExportFormat::Xlsx) {
        return Err(ConfigError::new(
            s.key("evidence"),
            "is only used with format = \"csv\" or \"xlsx\" (JSON keeps evidence inside each alert)",
            "remove it",
        ));
    }
    e.bom = s.bool("bom")?.unwrap_or(true);
    e.crlf = s.choice("line_ending", &[("crlf", true), ("lf", false)], true)?;
    e.formula_guard = s.bool("formula_guard")?.unwrap_or(true);
    if let Some(text) = s.str("schedule")? {
        e.schedule = Some(schedule(
            s,
            "schedule",
            text,
            "write six fields, seconds first, in UTC: \"0 0 6 * * *\" is every day at 06:00 UTC; leave it out to export after every poll",
        )?);
    }
    e.keep = match s.int("keep")? {
        None => 10,
        Some(n @ 1..=100_000) => n as usize,
        Some(n) => {
            return Err(ConfigError::new(
                s.key("keep"),
                format!("{n} is out of range"),
                "keep at least 1 timestamped file",
            ));
        }
    };
    if let Some(mode) = s.str("file_mode")? {
        let parsed = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o600 == 0o600);
        e.file_mode = parsed.ok_or_else(|| {
            ConfigError::new(
                s.key("file_mode"),
                format!("{mode:?} is not a usable file mode"),
                "write octal digits in quotes, at least owner read-write, e.g. file_mode = \"0640\"",
            )
        })?;
    }
    Ok(e)
}

/// Checks that every export directory exists (creating it) and can be written, so that a poll
/// does not fail on it after spending API calls. Called by the commands that write exports, not
/// by `status`, which a read-only user may run.
pub fn check_export_dirs(config: &Config) -> Result<(), ConfigError> {
    for (i, e) in config.exports.iter().enumerate() {
        let key = format!("exports[{i}].dir");
        let probe = std::fs::create_dir_all(&e.dir).and_then(|()| {
            tempfile::Builder::new()
                .prefix(&format!(
                    "{}{}-",
                    crate::export::TEMP_PREFIX,
                    std::process::id()
                ))
                .tempfile_in(&e.dir)
                .map(drop)
        });
        if let Err(err) = probe {
            return Err(ConfigError::new(
                key,
                format!("{} cannot be written: {err}", e.dir.display()),
                "create it and give the service's user write access (the systemd unit's export directory), or choose another dir",
            )
            .in_file(&config.path));
        }
    }
    Ok(())
}

impl Config {
    /// What `config check` adds to loading: everything a poll or the service needs that a valid
    /// file does not prove, checked without calling Microsoft, so that "ok" means a poll will not
    /// refuse to start: no placeholder IDs left from the example, every secret readable (and not
    /// a Secret ID), the store's directory usable and every export directory writable.
    pub fn check_ready(&self) -> Result<(), ConfigError> {
        for t in &self.tenants {
            for (k, value, fix) in [
                (
                    "tenant_id",
                    &t.tenant_id,
                    "copy the Directory (tenant) ID from the app registration's overview in the Entra admin center",
                ),
                (
                    "client_id",
                    &t.client_id,
                    "copy the Application (client) ID from the app registration's overview in the Entra admin center",
                ),
            ] {
                if value == PLACEHOLDER_GUID {
                    return Err(ConfigError::new(
                        t.key(k),
                        "is still the example's placeholder (all zeros)",
                        fix,
                    )
                    .in_file(&self.path));
                }
            }
            t.check_secrets().map_err(|e| e.in_file_of(self))?;
        }
        check_store_dir(self)?;
        check_export_dirs(self)
    }
}

/// Checks that the store can be created or written where `[store] path` says, as `poll` will
/// need: its directory exists and takes new files (SQLite adds `-wal` and `-shm` beside it), and
/// an existing store is a regular file this user may write.
pub fn check_store_dir(config: &Config) -> Result<(), ConfigError> {
    let path = &config.store.path;
    let err = |problem: String, fix: &str| {
        ConfigError::new("store.path", problem, fix).in_file(&config.path)
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(err(
            format!("the directory {} does not exist", dir.display()),
            "create it (the systemd unit's StateDirectory= does this), or change [store] path",
        ));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(err(
                format!("{} exists and is not a regular file", path.display()),
                "point [store] path at a file name (the store is created on the first poll)",
            ));
        }
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            return Err(err(
                format!(
                    "the store {} cannot be written by this user: {e}",
                    path.display()
                ),
                "run as the service's user, or give it write access to the store",
            ));
        }
    }
    if let Err(e) = tempfile::Builder::new()
        .prefix(".mde-alerts-check-")
        .tempfile_in(dir)
    {
        return Err(err(
            format!(
                "{} does not take new files for this user ({e}); SQLite needs to create its -wal and -shm files there",
                dir.display()
            ),
            "give the service's user write access to the directory (the unit's StateDirectory=), or change [store] path",
        ));
    }
    Ok(())
}

impl fmt::Display for Config {
    /// The resolved settings, as `config check` prints them. Secrets are never read here: only
    /// where they come from is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config: {}", self.path.display())?;
        for t in &self.tenants {
            writeln!(f, "tenant {}:", t.name)?;
            writeln!(f, "  tenant_id      {}", t.tenant_id)?;
            writeln!(f, "  client_id      {}", t.client_id)?;
            match &t.auth {
                AuthMethod::ClientSecret(src) => writeln!(
                    f,
                    "  auth           client_secret, read from {src} (value redacted)"
                )?,
                AuthMethod::Certificate {
                    certificate_file,
                    private_key_file,
                    algorithm,
                } => {
                    writeln!(
                        f,
                        "  auth           certificate {} ({algorithm:?} assertion)",
                        certificate_file.display()
                    )?;
                    match private_key_file {
                        Some(k) => {
                            writeln!(f, "  private key    {} (contents redacted)", k.display())?
                        }
                        None => writeln!(
                            f,
                            "  private key    in the certificate file (contents redacted)"
                        )?,
                    }
                }
                AuthMethod::Password {
                    username,
                    password,
                    client_secret,
                } => {
                    writeln!(f, "  auth           password (delegated) as {username}")?;
                    writeln!(f, "  password       read from {password} (value redacted)")?;
                    match client_secret {
                        Some(src) => {
                            writeln!(f, "  client secret  read from {src} (value redacted)")?
                        }
                        None => writeln!(f, "  client secret  none (public client)")?,
                    }
                }
            }
            writeln!(f, "  cloud          {:?}", t.cloud)?;
            if let Some(r) = t.region {
                writeln!(f, "  region         {r:?}")?;
            }
            writeln!(f, "  login          {}", t.login_url)?;
            writeln!(f, "  api            {}", t.api_url)?;
            writeln!(f, "  resource       {}", t.resource)?;
            writeln!(f, "  token endpoint {:?}", t.token_endpoint)?;
        }
        let p = &self.poll;
        writeln!(f, "poll:")?;
        writeln!(f, "  schedule         {} (UTC)", p.schedule.as_str())?;
        writeln!(
            f,
            "  initial_lookback {}",
            humantime::format_duration(p.initial_lookback)
        )?;
        writeln!(
            f,
            "  overlap          {}",
            humantime::format_duration(p.overlap)
        )?;
        writeln!(f, "  page_size        {}", p.page_size)?;
        writeln!(f, "  expand_evidence  {}", p.expand_evidence)?;
        writeln!(
            f,
            "  request_timeout  {}",
            humantime::format_duration(p.request_timeout)
        )?;
        writeln!(
            f,
            "  API budget       {} calls/minute, {} calls/hour per tenant",
            p.calls_per_minute, p.calls_per_hour
        )?;
        writeln!(f, "store: {}", self.store.path.display())?;
        match &self.http.proxy {
            Some(p) => writeln!(f, "proxy: {p}")?,
            None => writeln!(f, "proxy: from HTTPS_PROXY / NO_PROXY, if set")?,
        }
        if let Some(ca) = &self.http.ca_file {
            writeln!(f, "extra CA: {}", ca.display())?;
        }
        for e in &self.exports {
            writeln!(
                f,
                "export {}: {:?} into {}, scope {}, {}",
                e.name,
                e.format,
                e.dir.display(),
                e.scope,
                match &e.schedule {
                    Some(c) => format!("on schedule {} (UTC)", c.as_str()),
                    None => "after every successful poll".into(),
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[tenants]]
name = "contoso"
tenant_id = "11111111-2222-3333-4444-555555555555"
client_id = "AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee"
client_secret_env = "TEST_SECRET_VAR"

[poll]
page_size = 500
overlap = "5m"

[store]
path = "alerts.db"

[[exports]]
name = "alerts"
format = "csv"
dir = "out"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x/config.toml"))
    }

    #[test]
    fn good_config_resolves_hosts_and_paths() {
        let c = parse(GOOD).unwrap();
        let t = &c.tenants[0];
        assert_eq!(t.api_url.as_str(), "https://api.security.microsoft.com/");
        assert_eq!(t.login_url.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(t.resource, MDE_RESOURCE);
        assert_eq!(t.client_id, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
        assert_eq!(c.poll.page_size, 500);
        assert_eq!(c.poll.overlap, Duration::from_secs(300));
        assert_eq!(c.store.path, PathBuf::from("/etc/x/alerts.db"));
        assert_eq!(c.exports[0].dir, PathBuf::from("/etc/x/out"));
    }

    fn err(text: &str) -> ConfigError {
        parse(text).unwrap_err()
    }

    #[test]
    fn unknown_key_suggests_the_right_one() {
        let e = err(&GOOD.replace("page_size", "pagesize"));
        assert_eq!(e.key, "poll.pagesize");
        assert!(e.fix.contains("`page_size`"), "{e}");
        let e = err(&GOOD.replace("[store]", "[stor]"));
        assert_eq!(e.key, "stor");
        assert!(e.fix.contains("`store`"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_type() {
        let e = err(&GOOD.replace("page_size = 500", "page_size = \"500\""));
        assert_eq!(e.key, "poll.page_size");
        assert!(e.problem.contains("integer"), "{e}");
    }

    #[test]
    fn out_of_range_page_size() {
        for bad in ["0", "10001", "-5"] {
            let e = err(&GOOD.replace("page_size = 500", &format!("page_size = {bad}")));
            assert_eq!(e.key, "poll.page_size");
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let add = |u: &str| GOOD.replace("[poll]", &format!("api_url = \"{u}\"\n[poll]"));
        parse(&add("http://127.0.0.1:8080")).unwrap();
        parse(&add("http://localhost:8080")).unwrap();
        parse(&add("http://[::1]:8080")).unwrap();
        let e = err(&add("http://api.example.com"));
        assert_eq!(e.key, "tenants[0].api_url");
        assert!(e.problem.contains("not loopback"));
    }

    #[test]
    fn malformed_toml_is_a_syntax_error() {
        let e = err("[[tenants]\nname = ");
        assert_eq!(e.key, "(syntax)");
    }

    #[test]
    fn missing_secret_names_the_key() {
        let c = parse(&GOOD.replace("TEST_SECRET_VAR", "SURELY_UNSET_VAR_4711")).unwrap();
        let e = c.tenants[0].check_secrets().unwrap_err();
        assert_eq!(e.key, "tenants[0].client_secret_env");
        assert!(e.fix.contains("SURELY_UNSET_VAR_4711"));
    }

    #[test]
    fn a_pasted_secret_is_refused_without_being_echoed() {
        let e = err(&GOOD.replace("TEST_SECRET_VAR", "Abc8Q~hunter2.secret-value"));
        assert_eq!(e.key, "tenants[0].client_secret_env");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = err(&GOOD.replace(
            "client_secret_env = \"TEST_SECRET_VAR\"",
            "client_secret_file = \"Abc8Q~hunter2secretvalue\"",
        ));
        assert_eq!(e.key, "tenants[0].client_secret_file");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn lookback_is_clamped_to_retention() {
        let c = parse(&GOOD.replace("[poll]", "[poll]\ninitial_lookback = \"400d\"")).unwrap();
        assert_eq!(c.poll.initial_lookback, MAX_LOOKBACK);
    }

    #[test]
    fn clouds_pair_hosts() {
        let c = parse(&GOOD.replace("[poll]", "cloud = \"gcc-high\"\n[poll]")).unwrap();
        assert_eq!(
            c.tenants[0].login_url.as_str(),
            "https://login.microsoftonline.us/"
        );
        let c = parse(&GOOD.replace("[poll]", "region = \"eu\"\n[poll]")).unwrap();
        assert_eq!(
            c.tenants[0].api_url.as_str(),
            "https://eu.api.security.microsoft.com/"
        );
        let e = err(&GOOD.replace("[poll]", "cloud = \"dod\"\nregion = \"eu\"\n[poll]"));
        assert_eq!(e.key, "tenants[0].region");
    }

    #[test]
    fn bad_schedule_and_duration() {
        let e = err(&GOOD.replace("[poll]", "[poll]\nschedule = \"every 5 minutes\""));
        assert_eq!(e.key, "poll.schedule");
        let e = err(&GOOD.replace("overlap = \"5m\"", "overlap = \"5 parsecs\""));
        assert_eq!(e.key, "poll.overlap");
    }

    /// Issue 9 item 8: a syntax error on the proxy line showed the line, password and all.
    #[test]
    fn toml_syntax_errors_do_not_show_secrets() {
        for bad in [
            "[http]\nproxy = \"http://svc:hunter2@proxy.example:3128\n",
            "[http]\nproxy = http://svc:hunter2@proxy.example:3128\n",
            "[[tenants]]\nclient_secret = hunter2\n",
            "[[tenants]]\npassword_file = \"/x\" hunter2\n",
        ] {
            let e = err(bad);
            assert_eq!(e.key, "(syntax)");
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(e.problem.contains("line 2"), "{e}");
        }
        assert_eq!(
            redact_userinfo("a https://u:p@h/x and ftp://h/y@z \"socks5://q@r\""),
            "a https://[redacted]@h/x and ftp://h/y@z \"socks5://[redacted]@r\""
        );
    }

    /// Issue 9 item 25: `tenant_id` goes into the token URL's path.
    #[test]
    fn tenant_id_is_a_guid_or_a_domain_name() {
        for good in [
            "contoso.onmicrosoft.com",
            "a-b.example",
            "11111111-2222-3333-4444-555555555555",
        ] {
            parse(&GOOD.replace("11111111-2222-3333-4444-555555555555", good)).unwrap();
        }
        for bad in [
            "../../x",
            "contoso.com/../x",
            "a b.com",
            "contoso",
            "-a.com",
            "1.2.3.4",
            "a..b",
            "x.com.",
        ] {
            let e = err(&GOOD.replace("11111111-2222-3333-4444-555555555555", bad));
            assert_eq!(e.key, "tenants[0].tenant_id", "{bad}");
        }
    }

    /// Issue 9 item 25: a schedule that never fires was accepted.
    #[test]
    fn a_schedule_that_never_fires_is_an_error() {
        let e = err(&GOOD.replace("[poll]", "[poll]\nschedule = \"0 0 0 30 2 *\""));
        assert_eq!(e.key, "poll.schedule");
        assert!(e.problem.contains("never fires"), "{e}");
        let e = err(&GOOD.replace("[poll]", "schedule = \"0 0 0 31 4 *\"\n[poll]"));
        assert_eq!(e.key, "tenants[0].schedule");
        let e = err(&(GOOD.to_owned() + "schedule = \"0 0 0 30 2 *\"\n"));
        assert_eq!(e.key, "exports[0].schedule");
        // Leap days come round within five years.
        parse(&GOOD.replace("[poll]", "[poll]\nschedule = \"0 0 0 29 2 *\"")).unwrap();
    }

    fn secret_from_file(content: &[u8]) -> Result<SecretString, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, content).unwrap();
        SecretSource::File {
            key: "tenants[0].client_secret_file".into(),
            path,
        }
        .read()
    }

    /// Issue 9 item 25: the Secret ID pasted for the Value.
    #[test]
    fn a_secret_id_is_not_taken_for_the_secret() {
        let e = secret_from_file(b"2b7f1c1e-0d4e-4a4e-9b1a-7f3e2c1d0a9b\n").unwrap_err();
        assert_eq!(e.key, "tenants[0].client_secret_file");
        assert!(e.problem.contains("Secret ID"), "{e}");
        assert!(!e.to_string().contains("2b7f1c1e"), "{e}");
        secret_from_file(b"Abc8Q~not-a-guid.value\n").unwrap();
    }

    /// Issue 9 item 9: `/dev/zero` filled memory, a FIFO hung.
    #[test]
    fn secret_paths_that_are_not_small_regular_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 70_000]).unwrap();
        for (path, says) in [
            (Path::new("/dev/zero"), "character device"),
            (fifo.as_path(), "FIFO"),
            (dir.path(), "directory"),
            (big.as_path(), "larger than 64 KiB"),
        ] {
            let src = SecretSource::File {
                key: "tenants[0].client_secret_file".into(),
                path: path.to_path_buf(),
            };
            let e = src.read().unwrap_err();
            assert_eq!(e.key, "tenants[0].client_secret_file");
            assert!(e.problem.contains(says), "{e}");
            assert!(e.fix.contains("client_secret_file"), "{e}");
        }
        let e = err(&GOOD.replace("[poll]", "[http]\nca_file = \"/dev/zero\"\n[poll]"));
        assert_eq!(e.key, "http.ca_file");
        assert!(e.problem.contains("character device"), "{e}");
    }

    /// Issue 9 item 25: the example's zeros passed `config check`.
    #[test]
    fn check_ready_refuses_placeholders_and_unusable_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let good = GOOD.replace("TEST_SECRET_VAR", "TEST_SECRET_VAR_READY");
        // SAFETY: see display_never_shows_the_secret; this variable is unique to this test.
        unsafe { std::env::set_var("TEST_SECRET_VAR_READY", "Abc8Q~value") };
        Config::parse(&good, &path).unwrap().check_ready().unwrap();
        for k in ["tenant_id", "client_id"] {
            let zeros = match k {
                "tenant_id" => {
                    good.replace("11111111-2222-3333-4444-555555555555", PLACEHOLDER_GUID)
                }
                _ => good.replace("AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee", PLACEHOLDER_GUID),
            };
            let e = Config::parse(&zeros, &path)
                .unwrap()
                .check_ready()
                .unwrap_err();
            assert_eq!(e.key, format!("tenants[0].{k}"));
            assert!(e.problem.contains("placeholder"), "{e}");
        }
        std::fs::write(dir.path().join("file"), "").unwrap();
        let e = Config::parse(&good.replace("dir = \"out\"", "dir = \"file/out\""), &path)
            .unwrap()
            .check_ready()
            .unwrap_err();
        assert_eq!(e.key, "exports[0].dir");
        let e = Config::parse(
            &good.replace("path = \"alerts.db\"", "path = \"nodir/a.db\""),
            &path,
        )
        .unwrap()
        .check_ready()
        .unwrap_err();
        assert_eq!(e.key, "store.path");
        let e = Config::parse(
            &good.replace("path = \"alerts.db\"", "path = \"out\""),
            &path,
        )
        .unwrap()
        .check_ready()
        .unwrap_err();
        assert_eq!(e.key, "store.path");
    }

    /// Pieces the config mutation fuzzer splices in.
    const TOKENS: &[&str] = &[
        "=",
        "\"",
        "[",
        "]",
        "[[",
        "]]",
        "\n",
        "#",
        "'",
        "{",
        "}",
        ",",
        ".",
        "0",
        "-1",
        "1e999",
        "true",
        "\"\"",
        "\"x\"",
        "\"0 0 0 30 2 *\"",
        "\"../x\"",
        "\"/dev/zero\"",
        "[poll]",
        "[[exports]]",
        "[[tenants]]",
        "name",
        "schedule",
        "tenant_id",
        "ca_file",
        "proxy",
        "\"http://u:p@h\"",
        "\u{feff}",
        "\u{0}",
        "é",
        "9999999999999999999999",
    ];

    fn check_config_error(
        r: Result<Config, ConfigError>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Err(e) = r {
            // A ConfigError is what main maps to exit 78; it must say where and what to do.
            proptest::prop_assert!(!e.key.is_empty(), "{e}");
            proptest::prop_assert!(!e.problem.is_empty() && !e.fix.is_empty(), "{e}");
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, failure_persistence: None, ..Default::default() })]

        /// The config loader on arbitrary text: no panic, and every error names a key and a fix.
        #[test]
        fn fuzz_config_arbitrary_text(text in "\\PC{0,400}") {
            check_config_error(parse(&text))?;
        }

        /// The config loader on a valid config with pieces removed, replaced or added.
        #[test]
        fn fuzz_config_mutated(
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 0u8..3, 0..TOKENS.len()),
                1..5,
            ),
        ) {
            let mut text: Vec<char> = GOOD.chars().collect();
            for (at, kind, token) in edits {
                let i = at.index(text.len() + 1);
                let end = (i + 1 + token % 8).min(text.len());
                match kind {
                    0 if i < text.len() => { text.drain(i..end); }
                    1 if i < text.len() => { text.splice(i..end, TOKENS[token].chars()); }
                    _ => { text.splice(i..i, TOKENS[token].chars()); }
                }
            }
            let text: String = text.into_iter().collect();
            check_config_error(parse(&text))?;
        }
    }

    #[test]
    fn display_never_shows_the_secret() {
        // SAFETY-free: setting an env var in a test is unsafe in edition 2024 because other threads
        // may read the environment; this variable is unique to this test.
        unsafe { std::env::set_var("TEST_SECRET_VAR_DISPLAY", "hunter2-super-secret") };
        let c = parse(&GOOD.replace("TEST_SECRET_VAR", "TEST_SECRET_VAR_DISPLAY")).unwrap();
        c.tenants[0].check_secrets().unwrap();
        let shown = format!("{c}\n{c:?}");
        assert!(!shown.contains("hunter2"));
    }
}
