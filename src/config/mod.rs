//! The one TOML file an admin writes, turned into a typed [`Config`].
//!
//! Loading happens in two steps, so that nothing past this module handles a string where a type
//! belongs: the file is deserialized into [`raw`] structs that mirror it key for key
//! (`deny_unknown_fields`), then `validate` turns those into the typed config, with defaults,
//! relative paths resolved and the project's own checks. Every error, from either step, names the
//! exact key (`tenants[0].client_id`), says what was found and gives the fix, and an unknown key
//! suggests the key the admin probably meant (`error`). A configuration error exits with code 78
//! (`EX_CONFIG`), which the systemd unit lists in `RestartPreventExitStatus=` so a broken file does
//! not cause a restart loop.
//!
//! Secrets are not read while loading: `SecretSource::read` resolves them on demand (the checks
//! in `preflight` call it), so that `export` and `import`, which never talk to Microsoft,
//! work for a user who cannot read the secret. Certificates are loaded by `crate::auth::cert`;
//! the config only names their paths.

mod display;
mod error;
mod files;
mod introspect;
mod mail;
pub mod raw;
mod secret;
mod services;
mod tenants_dir;
mod validate;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use toml::Table;
use url::Url;

pub use crate::alert::filter::Filter;
pub(crate) use error::ConfigError;
pub(crate) use files::{SmallFileError, read_key_file, read_small_file};
pub(crate) use mail::{MailConfig, MailTls};
pub(crate) use secret::{SECRET_FILE_FIX, SecretSource, warn_if_shared};
use validate::RawFile;

use files::CONFIG_FILE_CAP;

/// Where the config is looked for when neither `--config` nor `MDE_ALERTS_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mde-alerts/config.toml";
/// The resource (audience) Defender for Endpoint tokens must be issued for in commercial clouds; a
/// token for any other audience gets 403 even on the newer API host.
pub const MDE_RESOURCE: &str = "https://api.securitycenter.microsoft.com";

/// The day Microsoft's message center item MC1220762 gives for the Defender for Endpoint and XDR
/// APIs to stop functioning (Microsoft's API pages so far carry the notice on advanced hunting
/// only); Microsoft Graph is the supported path.
pub(crate) const MDE_SWITCH_OFF: &str = "2027-02-01";

/// Whether `today` is on or after [`MDE_SWITCH_OFF`].
pub(crate) fn mde_switched_off(today: chrono::NaiveDate) -> bool {
    chrono::NaiveDate::parse_from_str(MDE_SWITCH_OFF, "%Y-%m-%d").is_ok_and(|d| today >= d)
}

/// What Microsoft announced about the MDE API, in words that claim no more than its sources do:
/// message center MC1220762 names the date; Microsoft's API pages so far carry the notice on
/// advanced hunting only.
pub(crate) fn mde_announcement() -> String {
    let verb = if mde_switched_off(chrono::Utc::now().date_naive()) {
        "was to stop"
    } else {
        "stops"
    };
    format!(
        "Microsoft's message MC1220762 says the Defender for Endpoint API {verb} functioning on {MDE_SWITCH_OFF} (its API pages so far carry the notice on advanced hunting only)"
    )
}

/// Something the admin should act on though nothing failed, and what to do: said as an error and
/// its hint are, `warning: …` then `fix: …`, and as two fields in `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    /// What is wrong, or soon will be.
    warning: String,
    /// What to do about it.
    pub fix: String,
}

impl Warning {
    /// A warning and its fix.
    pub(crate) fn new(warning: impl Into<String>, fix: impl Into<String>) -> Warning {
        Warning {
            warning: warning.into(),
            fix: fix.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.warning)
    }
}

/// The warning a tenant pinned to the MDE API gets (in `config check`, `auth check` and `status`):
/// the date, and the fix.
pub(crate) fn mde_deprecation() -> Warning {
    Warning::new(
        format!(
            "this tenant is pinned to the Defender for Endpoint API (source = \"mde\"). {}",
            mde_announcement()
        ),
        "grant the app Microsoft Graph's SecurityAlert.Read.All (application permission, admin consent), run `mde-alerts compare` to see what changes, then remove the source line (auto reads Graph once the app may) or set source = \"graph\"",
    )
}

/// Microsoft Graph's commercial (and GCC) root; its token audience and `.default` scope.
const GRAPH_ROOT: &str = "https://graph.microsoft.com";
/// Defender keeps alerts for 180 days; asking for more only earns a 400.
pub(crate) const MAX_LOOKBACK: Duration = Duration::from_secs(180 * 86_400);
/// The GUID config.example.toml ships with; `config check` refuses it.
pub(crate) const PLACEHOLDER_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// The keys of each section (`""` is the top level), read from the [`raw`] structs: for the test
/// that the example config documents every one of them.
pub fn keys() -> Vec<(&'static str, &'static [&'static str])> {
    raw::sections()
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub(crate) path: PathBuf,
    /// One entry per Defender tenant: the file's `[[tenants]]`, then those of `tenants_dir`.
    /// Shared (`Arc`) with the service's per-tenant state rather than copied: at 10,000 tenants
    /// a second copy of every tenant's settings was 16 MB of the service's memory.
    pub tenants: Vec<Arc<TenantConfig>>,
    /// The directory more tenants were read from (`tenants_dir`), if any.
    tenants_dir: Option<PathBuf>,
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
    pub(crate) metrics_textfile: Option<PathBuf>,
    /// Logging.
    pub log: LogConfig,
    /// The mail server exports with `mail_to` are sent through (`[mail]`).
    pub(crate) mail: Option<MailConfig>,
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
    pub(crate) proxy: Option<ProxyConfig>,
    /// A PEM bundle of CA certificates to trust in addition to the system's (a TLS-inspecting
    /// proxy's private CA). Certificate verification itself can never be turned off.
    pub(crate) ca_file: Option<PathBuf>,
}

/// A proxy URL without its credentials, and the credentials apart, redacted.
#[derive(Clone)]
pub(crate) struct ProxyConfig {
    /// `scheme://host:port`, no user info.
    pub(crate) url: Url,
    /// The user name, if any.
    pub(crate) username: Option<String>,
    /// The password, if any.
    pub(crate) password: Option<SecretString>,
}

/// The same proxy (with the same credentials) and CA file: a reload that keeps them keeps the
/// token providers of the tenants it does not change.
impl PartialEq for HttpConfig {
    fn eq(&self, other: &HttpConfig) -> bool {
        use secrecy::ExposeSecret;
        let proxy = match (&self.proxy, &other.proxy) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.url == b.url
                    && a.username == b.username
                    && a.password.as_ref().map(|p| p.expose_secret())
                        == b.password.as_ref().map(|p| p.expose_secret())
            }
            _ => false,
        };
        proxy && self.ca_file == other.ca_file
    }
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
type TenantName = String;

/// One Defender tenant and how to sign in to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// Where the block is in its file (`tenants[0]`), for error messages.
    key_prefix: String,
    /// The file the block is in: the config file, or a file of `tenants_dir`.
    file: PathBuf,
    /// The tenant's short name.
    pub name: TenantName,
    /// The Entra tenant: a GUID or a verified domain.
    pub(crate) tenant_id: String,
    /// The app registration's client (application) ID.
    pub(crate) client_id: String,
    /// How to sign in.
    pub(crate) auth: AuthMethod,
    /// The national cloud.
    cloud: Cloud,
    /// The regional API host, commercial cloud only.
    region: Option<Region>,
    /// Entra's host, e.g. `https://login.microsoftonline.com` (from `cloud`, or `login_url`).
    pub(crate) login_url: Url,
    /// Defender's API host, e.g. `https://api.security.microsoft.com` (from `cloud`/`region`, or
    /// `api_url`).
    pub api_url: Url,
    /// The token resource / audience.
    resource: String,
    /// Which Entra token endpoint to use.
    pub(crate) token_endpoint: TokenEndpoint,
    /// This tenant's own poll schedule, instead of `[poll] schedule`.
    pub schedule: Option<std::sync::Arc<croner::Cron>>,
    /// Which API the poll reads: pinned, or `auto`.
    pub source: SourceChoice,
    /// Microsoft Graph's root for this cloud (or `graph_url`), e.g. `https://graph.microsoft.com`.
    pub graph_url: Url,
    /// Graph's token audience in this cloud (`graph_url` does not change it, as `api_url` does not
    /// change `resource`).
    graph_resource: String,
    /// Which Defender products' alerts a Graph tenant exports.
    pub services: Services,
}

/// An alerts API: the one a tenant reads now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Defender for Endpoint's `GET /api/alerts` (see `MDE_SWITCH_OFF`).
    Mde,
    /// Microsoft Graph's `GET /v1.0/security/alerts_v2`.
    Graph,
}

impl SourceKind {
    /// The name written in the config and the store (`mde`, `graph`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SourceKind::Mde => "mde",
            SourceKind::Graph => "graph",
        }
    }

    /// The API's name for people.
    pub fn title(self) -> &'static str {
        match self {
            SourceKind::Mde => "the Defender for Endpoint API",
            SourceKind::Graph => "Microsoft Graph",
        }
    }

    /// The name in the store back as an API (`None` for a name this version does not know).
    pub fn parse(name: &str) -> Option<SourceKind> {
        match name {
            "mde" => Some(SourceKind::Mde),
            "graph" => Some(SourceKind::Graph),
            _ => None,
        }
    }
}

/// Which API a tenant reads, as its config says: `auto` (the default) decides by what the app may
/// read, so that an install that never names a source moves to Graph by itself once its app is
/// granted Graph's permission, and before the MDE API stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceChoice {
    /// Microsoft Graph when the app holds its alerts permission, else the MDE API.
    #[default]
    Auto,
    /// Always the MDE API.
    Mde,
    /// Always Microsoft Graph.
    Graph,
}

impl SourceChoice {
    /// The API a pinned tenant reads; `None` for `auto`.
    pub fn pinned(self) -> Option<SourceKind> {
        match self {
            SourceChoice::Auto => None,
            SourceChoice::Mde => Some(SourceKind::Mde),
            SourceChoice::Graph => Some(SourceKind::Graph),
        }
    }

    /// Whether the tenant may read `api`.
    pub(crate) fn may_read(self, api: SourceKind) -> bool {
        self.pinned().is_none_or(|p| p == api)
    }

    /// The name written in the config (`auto`, `mde`, `graph`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceChoice::Auto => "auto",
            SourceChoice::Mde => "mde",
            SourceChoice::Graph => "graph",
        }
    }
}

impl From<SourceKind> for SourceChoice {
    fn from(api: SourceKind) -> SourceChoice {
        match api {
            SourceKind::Mde => SourceChoice::Mde,
            SourceKind::Graph => SourceChoice::Graph,
        }
    }
}

/// The Defender products whose alerts a Graph tenant exports (Graph's `serviceSource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Services {
    /// Every product (`["all"]`): no `serviceSource` clause.
    All,
    /// Only these (`serviceSource eq '…'`): members of `SERVICE_SOURCES`, or camelCase names
    /// Microsoft may have added to Graph since (kept with a warning).
    Only(Vec<&'static str>),
}

impl Services {
    /// Endpoint alerts only, the same alerts the MDE API returns: the default.
    pub(crate) fn endpoint() -> Services {
        Services::Only(vec!["microsoftDefenderForEndpoint"])
    }
}

/// Graph's documented `serviceSource` members (microsoft.graph.security.serviceSource: the
/// reference's enum page and the v1.0 `$metadata`), but the `unknownFutureValue` sentinel, which
/// names no product.
const SERVICE_SOURCES: &[&str] = &[
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
    "microsoftDefenderForCloud",
    "microsoftSentinel",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
    "microsoftSecurityForAI",
    "unknown",
];

/// Entra's two token endpoints; both issue the same Defender token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenEndpoint {
    /// `/{tenant}/oauth2/v2.0/token` with `scope={resource}/.default` (the default, listed first).
    V2,
    /// `/{tenant}/oauth2/token` with `resource=`.
    V1,
}

/// How a tenant signs in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AuthMethod {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256, header `x5t#S256`.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, header `x5t`.
    Rs256,
}

impl AuthMethod {}

impl TenantConfig {
    /// The file the tenant's block is in: the config file, or a file of `tenants_dir`.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// Refuses the example's all-zero IDs left in place: Entra would answer AADSTS90002 at every
    /// poll, and a service would retry for ever a config that can never work. Every command that
    /// signs in checks it, not only `config check`.
    pub(crate) fn check_ids_filled(&self) -> Result<(), ConfigError> {
        for (k, value, fix) in [
            (
                "tenant_id",
                &self.tenant_id,
                "copy the Directory (tenant) ID from the app registration's overview in the Entra admin center",
            ),
            (
                "client_id",
                &self.client_id,
                "copy the Application (client) ID from the app registration's overview in the Entra admin center",
            ),
        ] {
            if value == PLACEHOLDER_GUID {
                return Err(self.in_its_file(ConfigError::new(
                    self.key(k),
                    "is still the example's placeholder (all zeros)",
                    fix,
                )));
            }
        }
        Ok(())
    }

    /// Ties an error about this tenant (a secret, a certificate) to the file its block is in: the
    /// config file or a file of `tenants_dir`.
    pub(crate) fn in_its_file(&self, e: ConfigError) -> ConfigError {
        e.or_in_file(&self.file)
    }

    /// Whether `other` configures this tenant the same way, wherever its block is written: the
    /// file and the position (and so the keys its errors name) may differ. A reload keeps the
    /// token provider and budget of a tenant whose settings are the same.
    pub(crate) fn same_settings(&self, other: &TenantConfig) -> bool {
        fn unplaced(t: &TenantConfig) -> TenantConfig {
            let unkeyed = |s: &SecretSource| match s {
                SecretSource::Env { var, .. } => SecretSource::Env {
                    key: String::new(),
                    var: var.clone(),
                },
                SecretSource::File { path, .. } => SecretSource::File {
                    key: String::new(),
                    path: path.clone(),
                },
                SecretSource::Credential { name, .. } => SecretSource::Credential {
                    key: String::new(),
                    name: name.clone(),
                },
            };
            let auth = match &t.auth {
                AuthMethod::ClientSecret(s) => AuthMethod::ClientSecret(unkeyed(s)),
                AuthMethod::Password {
                    username,
                    password,
                    client_secret,
                } => AuthMethod::Password {
                    username: username.clone(),
                    password: unkeyed(password),
                    client_secret: client_secret.as_ref().map(unkeyed),
                },
                other => other.clone(),
            };
            TenantConfig {
                key_prefix: String::new(),
                file: PathBuf::new(),
                auth,
                ..t.clone()
            }
        }
        unplaced(self) == unplaced(other)
    }

    /// The full name of one of this tenant's keys (`tenants[0].certificate_file`).
    pub(crate) fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.key_prefix)
    }

    /// The host of `api` for this tenant (`api_url` or `graph_url`).
    pub(crate) fn endpoint(&self, api: SourceKind) -> &Url {
        match api {
            SourceKind::Mde => &self.api_url,
            SourceKind::Graph => &self.graph_url,
        }
    }

    /// The token audience for `source`: Defender's resource, or the Graph root.
    pub(crate) fn resource_for(&self, source: SourceKind) -> String {
        match source {
            SourceKind::Mde => self.resource.clone(),
            SourceKind::Graph => self.graph_resource.clone(),
        }
    }

    /// This tenant pinned to `source` (the `compare` command signs in to both APIs).
    pub(crate) fn reading(&self, source: SourceKind) -> TenantConfig {
        TenantConfig {
            source: source.into(),
            ..self.clone()
        }
    }
}

/// The national clouds: each picks the API host and the login host together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
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
    pub(crate) fn host_prefix(self) -> &'static str {
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
    pub(crate) expand_evidence: bool,
    /// The whole-request timeout for one API or token call.
    pub(crate) request_timeout: Duration,
    /// API calls allowed per minute per tenant (Defender: 100).
    calls_per_minute: u32,
    /// API calls allowed per hour per tenant (Defender: 1,500).
    calls_per_hour: u32,
    /// `$top` for Graph tenants: `page_size`, at most Graph's 1,000.
    graph_page_size: u32,
    /// Calls per minute for Graph tenants (Graph: 150 per app per tenant).
    graph_calls_per_minute: u32,
    /// Calls per hour for Graph tenants (Graph sets no hourly quota: 60 × the minute's).
    graph_calls_per_hour: u32,
    /// How many tenants are read at once (1..=256, default 16), by a one-off `poll` and by `run`
    /// (which also staggers each schedule's tenants over up to a minute).
    pub(crate) concurrency: usize,
}

impl PollConfig {
    /// `(per minute, per hour)` for a tenant reading `source`.
    pub(crate) fn quotas(&self, source: SourceKind) -> (u32, u32) {
        match source {
            SourceKind::Mde => (self.calls_per_minute, self.calls_per_hour),
            SourceKind::Graph => (self.graph_calls_per_minute, self.graph_calls_per_hour),
        }
    }

    /// `$top` for a tenant reading `source`.
    pub(crate) fn page_size(&self, source: SourceKind) -> u32 {
        match source {
            SourceKind::Mde => self.page_size,
            SourceKind::Graph => self.graph_page_size,
        }
    }
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The database file.
    pub path: PathBuf,
    /// How long a superseded revision is kept (`[store] keep_revisions`); `None` keeps every
    /// revision. The latest revision of an alert is never removed, whatever its age.
    pub keep_revisions: Option<std::time::Duration>,
}

/// `[store] keep_revisions` when the file does not say: 400 days, a year and a
/// month of history, enough for a yearly audit to see every state of the past year.
const DEFAULT_KEEP_REVISIONS: std::time::Duration = std::time::Duration::from_secs(400 * 86_400);

/// A configured snapshot.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The file name stem: `NAME-latest.EXT`. With [`per_tenant`](Self::per_tenant) it holds
    /// `{tenant}` once (`alerts-{tenant}`): the export's name in `export --name` and the
    /// schedule, never a file name.
    pub name: String,
    /// `{tenant}` in `name`: one file set per tenant (limited by `filter.tenants`), each named
    /// with the tenant and holding only that tenant's alerts. Expanded when the export runs,
    /// over the tenants configured then, so a tenant added on reload gets its set.
    pub per_tenant: bool,
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
    /// Besides those, the newest timestamped file of each of this many last days (UTC) is kept:
    /// a history that reaches back a week however often the export is written.
    pub keep_daily: usize,
    /// Mode of the files written.
    pub file_mode: u32,
    /// The report's window (format `report`).
    pub report_window: Duration,
    /// JSON/NDJSON: the alerts as stored, or all in the MDE API's shape.
    pub shape: ExportShape,
    /// CSV: how times are written (ISO 8601 for scripts, or what a spreadsheet reads as a date).
    pub time_format: TimeFormat,
    /// Report: the time zone its dates, days and window are shown in (`None`: UTC).
    pub timezone: Option<chrono_tz::Tz>,
    /// Who each file written is mailed to (through `Config::mail`); empty: not mailed.
    pub mail_to: Vec<lettre::message::Mailbox>,
}

impl ExportConfig {
    /// An ad-hoc export (`export --format … --out …`): everything, default columns and safety.
    pub fn ad_hoc(format: ExportFormat) -> Self {
        ExportConfig {
            name: "export".into(),
            per_tenant: false,
            format,
            dir: PathBuf::from("."),
            scope: Scope::All,
            filter: Filter::default(),
            columns: crate::alert::columns::DEFAULT_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            evidence_separate: false,
            bom: true,
            crlf: true,
            formula_guard: true,
            schedule: None,
            keep: 10,
            keep_daily: 7,
            file_mode: 0o640,
            report_window: Duration::from_secs(86_400),
            shape: ExportShape::Verbatim,
            time_format: TimeFormat::Iso,
            timezone: None,
            mail_to: Vec::new(),
        }
    }
}

/// The placeholder in an export's `name` that [`ExportConfig::per_tenant`] replaces.
const TENANT_PLACEHOLDER: &str = "{tenant}";

impl ExportConfig {
    /// The name of `tenant`'s file set (`alerts-{tenant}` → `alerts-contoso`); `name` itself when
    /// the export is not per tenant.
    pub(crate) fn name_for(&self, tenant: &str) -> String {
        if self.per_tenant {
            self.name.replacen(TENANT_PLACEHOLDER, tenant, 1)
        } else {
            self.name.clone()
        }
    }

    /// The names of the file sets this export writes when `configured` are the tenants: one per
    /// tenant it covers when per tenant, else its one name. The store keeps a `changed` export's
    /// starting point under each of these names.
    fn set_names<'a>(&'a self, configured: &'a [String]) -> Vec<(Option<&'a str>, String)> {
        if !self.per_tenant {
            return vec![(None, self.name.clone())];
        }
        self.tenants_of(configured)
            .map(|t| (Some(t), self.name_for(t)))
            .collect()
    }

    /// The configured tenants this export covers, in config order: all, or those `tenants` lists.
    pub(crate) fn tenants_of<'a>(
        &'a self,
        configured: &'a [String],
    ) -> impl Iterator<Item = &'a str> {
        configured
            .iter()
            .filter(|t| self.filter.tenants.is_empty() || self.filter.tenants.contains(t))
            .map(String::as_str)
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

/// Snapshot file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
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

/// How a CSV export writes times (`time_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFormat {
    /// Exactly as the API sent them, ISO 8601 in UTC (`2026-11-16T19:43:38.2912715Z`): the
    /// default, and the contract scripts read.
    #[default]
    Iso,
    /// `2026-11-16 19:43:38`, which Excel and LibreOffice read as a date and time; the column's
    /// header says `(UTC)`.
    Excel,
}

/// The JSON shape of a JSON or NDJSON export (`shape`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportShape {
    /// Each alert exactly as the API that fed it returned it (MDE or Graph `alerts_v2`).
    #[default]
    Verbatim,
    /// Each alert in the MDE API's shape: Graph `alerts_v2` alerts mapped
    /// (`docs/graph-mapping.md`), so scripts written against `/api/alerts` keep working.
    Mde,
}

impl fmt::Display for ExportShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportShape::Verbatim => "verbatim",
            ExportShape::Mde => "mde",
        })
    }
}

impl ExportFormat {
    /// The file extension.
    pub(crate) fn extension(self) -> &'static str {
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
        Self::parse(text.trim_start_matches('\u{feff}'), path).map_err(|e| e.or_in_file(path))
    }

    /// Validates config text; relative paths are taken from `path`'s directory.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let table: Table = text.parse().map_err(|e| error::syntax(&e))?;
        let raw = serde_path_to_error::deserialize(table).map_err(error::from_serde)?;
        Config::try_from(RawFile {
            path: path.to_path_buf(),
            raw,
        })
    }

    /// The configured tenants' names, in config order.
    pub fn tenant_names(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.name.clone()).collect()
    }

    /// The tenant called `name`, or an error listing the configured ones.
    pub fn tenant(&self, name: &str) -> Result<&Arc<TenantConfig>, ConfigError> {
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

/// Whether the URL points at this machine.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parses a cron schedule: six fields with seconds (five are accepted, seconds = 0), UTC.
pub fn parse_cron(text: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
}

/// The typical gap between two firings of `cron` (the shortest of the next few).
fn cron_interval(cron: &croner::Cron) -> Duration {
    cron_interval_at(cron, chrono::Utc::now())
}

/// [`cron_interval`] after `now` (the daemon's scheduler passes its own clock).
pub(crate) fn cron_interval_at(
    cron: &croner::Cron,
    now: chrono::DateTime<chrono::Utc>,
) -> Duration {
    let times: Vec<_> = cron.iter_after(now).take(4).collect();
    times
        .windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .min()
        .unwrap_or(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::error::redact_userinfo;
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

    /// The same Entra tenant twice read every alert twice (two rows per alert, every High alert
    /// twice in the report): a config error naming both blocks.
    #[test]
    fn the_same_tenant_twice_is_an_error_naming_both() {
        let twice = GOOD.replace(
            "[poll]",
            "[[tenants]]\nname = \"contoso-graph\"\ntenant_id = \"11111111-2222-3333-4444-555555555555\"\nclient_id = \"AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee\"\nclient_secret_env = \"TEST_SECRET_VAR\"\nsource = \"graph\"\n\n[poll]",
        );
        let e = parse(&twice).unwrap_err();
        assert_eq!(e.key, "tenants[1].tenant_id");
        assert!(e.problem.contains("\"contoso-graph\""), "{}", e.problem);
        assert!(
            e.problem.contains("\"contoso\" (tenants[0]"),
            "{}",
            e.problem
        );
        assert!(
            e.fix.contains("one [[tenants]] block per Entra tenant"),
            "{}",
            e.fix
        );
        // Another tenant is fine.
        parse(&twice.replace(
            "tenant_id = \"11111111-2222-3333-4444-555555555555\"\nclient_id = \"AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee\"\nclient_secret_env = \"TEST_SECRET_VAR\"\nsource",
            "tenant_id = \"21111111-2222-3333-4444-555555555555\"\nclient_id = \"AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee\"\nclient_secret_env = \"TEST_SECRET_VAR\"\nsource",
        ))
        .unwrap();
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

    /// TOML's own error quotes the offending line, which may be the proxy URL with its password.
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

    /// `tenant_id` goes into the token URL's path, so anything but a GUID or a domain is refused.
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

    /// A secret's value pasted into `client_id` (the portal shows them side by side) is not
    /// echoed by the error; a mistyped GUID is.
    #[test]
    fn a_secret_pasted_as_an_id_is_not_echoed() {
        let secret = "Abc8Q~xYzsecretvalue0123456789abcdefGHIJ";
        let e = err(&GOOD.replace("AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee", secret));
        assert_eq!(e.key, "tenants[0].client_id");
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(e.problem.contains("not shown"), "{e}");
        let e = err(&GOOD.replace(
            "AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee",
            "8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2",
        ));
        assert!(
            e.problem.contains("8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2"),
            "{e}"
        );
    }

    /// A secret written inline is refused without being echoed, and without a "did you mean"
    /// that would send it into `client_secret_env`.
    #[test]
    fn a_secret_written_inline_is_refused_with_where_it_goes() {
        let e = err(&GOOD.replace(
            "client_secret_env = \"TEST_SECRET_VAR\"",
            "client_secret = \"Abc8Q~xYzsecretvalue\"",
        ));
        assert_eq!(e.key, "tenants[0].client_secret");
        assert!(!format!("{e} {}", e.fix).contains("Abc8Q"), "{e}");
        assert!(e.fix.contains("client_secret_file"), "{}", e.fix);
        assert!(!e.fix.contains("did you mean"), "{}", e.fix);
    }

    /// Exported alerts that any account may rewrite are refused; readable by all is a choice.
    #[test]
    fn an_export_mode_that_lets_others_write_is_refused() {
        for mode in ["0666", "0642", "0777"] {
            let e = err(&(GOOD.to_owned() + &format!("file_mode = \"{mode}\"\n")));
            assert_eq!(e.key, "exports[0].file_mode", "{mode}");
            assert!(e.problem.contains("every account"), "{e}");
        }
        parse(&(GOOD.to_owned() + "file_mode = \"0644\"\n")).unwrap();
    }

    /// A schedule that never fires would leave the tenant unpolled without a word.
    #[test]
    fn a_schedule_that_never_fires_is_an_error() {
        let e = err(&GOOD.replace("[poll]", "[poll]\nschedule = \"0 0 0 30 2 *\""));
        assert_eq!(e.key, "poll.schedule");
        assert!(e.problem.contains("never fires"), "{e}");
        assert!(
            e.fix.starts_with("make the day, month and weekday"),
            "{e:?}"
        );
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

    /// The app registration shows a secret's ID (a GUID) beside its Value: a common wrong paste.
    #[test]
    fn a_secret_id_is_not_taken_for_the_secret() {
        let e = secret_from_file(b"2b7f1c1e-0d4e-4a4e-9b1a-7f3e2c1d0a9b\n").unwrap_err();
        assert_eq!(e.key, "tenants[0].client_secret_file");
        assert!(e.problem.contains("Secret ID"), "{e}");
        assert!(!e.to_string().contains("2b7f1c1e"), "{e}");
        secret_from_file(b"Abc8Q~not-a-guid.value\n").unwrap();
    }

    /// A secret path may name `/dev/zero` (endless) or a FIFO (blocks for ever): only a small
    /// regular file is read.
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

    /// `config check` fails where `poll` would: the example's placeholder GUIDs, directories that
    /// cannot be written.
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
        std::fs::create_dir(dir.path().join("out")).unwrap();
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
