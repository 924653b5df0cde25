//! From the file as written ([`RawConfig`]) to the typed [`Config`]: defaults, relative paths,
//! the checks that are project knowledge (GUIDs, cloud and region pairing, loopback-only
//! `http://`, Defender's quotas and limits, schedules that fire) and the checks across keys.
//! Types were checked by serde; every error here names its key and gives the fix.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::error::ConfigError;
use super::raw::{
    AuthKind, EvidenceMode, HumanDuration, LineEnding, LogFormat, MinSeverity, RawConfig,
    RawExport, RawHttp, RawPoll, RawTenant, ScopeKind,
};
use super::{
    AssertionAlgorithm, AuthMethod, Cloud, Config, ExportConfig, ExportFormat, HealthConfig,
    HttpConfig, LogConfig, MAX_LOOKBACK, MDE_RESOURCE, PollConfig, ProxyConfig, Scope,
    SecretSource, StoreConfig, TenantConfig, TokenEndpoint, cron_interval, is_loopback, parse_cron,
};

/// A parsed file and where it is (relative paths in it are taken from its directory).
#[derive(Debug, Clone)]
pub struct RawFile {
    /// The file's path.
    pub path: PathBuf,
    /// Its contents.
    pub raw: RawConfig,
}

/// The key names of one block: `tenants[0]` + `client_id`.
struct At<'a>(&'a str);

impl At<'_> {
    fn key(&self, k: &str) -> String {
        if self.0.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.0)
        }
    }

    fn error(&self, k: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::new(self.key(k), problem, fix)
    }

    /// A string that must be there and not blank.
    fn required<'v>(
        &self,
        k: &str,
        value: &'v Option<String>,
        fix: &str,
    ) -> Result<&'v str, ConfigError> {
        match value.as_deref() {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.error(k, "is empty", fix)),
            None => Err(self.error(k, "is missing", fix)),
        }
    }
}

impl TryFrom<RawFile> for Config {
    type Error = ConfigError;

    fn try_from(file: RawFile) -> Result<Config, ConfigError> {
        let RawFile { path, raw } = file;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let base = base.as_path();
        let tenants = raw
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| tenant(&At(&format!("tenants[{i}]")), t, base))
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
        let poll = poll(&At("poll"), &raw.poll, loopback_only)?;
        let http = http(&At("http"), &raw.http, base)?;
        let health = HealthConfig {
            max_age: dur(raw.health.max_age).unwrap_or(cron_interval(&poll.schedule) * 3),
        };
        let metrics_textfile = raw.metrics.textfile.as_ref().map(|p| base.join(p));
        let log = LogConfig {
            json: raw.log.format == Some(LogFormat::Json),
            level: match raw.log.level {
                None => LogConfig::default().level,
                Some(l) => {
                    tracing_subscriber::EnvFilter::try_new(&l).map_err(|e| {
                        ConfigError::new(
                            "log.level",
                            format!("{l:?} is not a log filter ({e})"),
                            "use error | warn | info | debug | trace, or a filter like \"warn,mde_alerts=debug\"",
                        )
                    })?;
                    l
                }
            },
        };
        let store = StoreConfig {
            path: raw.store.path.as_ref().map_or_else(
                || PathBuf::from("/var/lib/mde-alerts/alerts.db"),
                |p| base.join(p),
            ),
        };
        let exports = raw
            .exports
            .iter()
            .enumerate()
            .map(|(i, e)| export(&At(&format!("exports[{i}]")), e, base, &tenants))
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
            path,
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
}

fn dur(d: Option<HumanDuration>) -> Option<Duration> {
    d.map(|d| d.0)
}

/// Accepts `https://` anywhere and `http://` only for loopback (simulators, local proxies).
fn endpoint_url(at: &At<'_>, k: &str, s: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| {
        at.error(
            k,
            format!("{s:?} is not a URL ({e})"),
            "write a full URL such as \"https://api.security.microsoft.com\"",
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(at.error(
            k,
            "the URL carries credentials",
            "remove user:password from the URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(at.error(
            k,
            "the URL has a query or fragment",
            "give only scheme, host, port and path",
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(at.error(
            k,
            format!("{s:?} uses plain http:// to a host that is not loopback"),
            "use https://; http:// is accepted only for 127.0.0.1, ::1 or localhost (simulators)",
        )),
        other => Err(at.error(
            k,
            format!("the scheme {other}:// is not supported"),
            "use https://",
        )),
    }
}

/// A Directory (tenant) ID, an Application (client) ID: `8-4-4-4-12` hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
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

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

const CERT_KEYS: &[&str] = &[
    "certificate_file",
    "private_key_file",
    "assertion_algorithm",
];
const PASSWORD_KEYS: &[&str] = &["username", "password_env", "password_file"];
const CLIENT_SECRET_KEYS: &[&str] = &["client_secret_env", "client_secret_file"];

fn tenant(at: &At<'_>, t: &RawTenant, base: &Path) -> Result<TenantConfig, ConfigError> {
    let name = at.required(
        "name",
        &t.name,
        "give the tenant a short name, e.g. name = \"contoso\"",
    )?;
    if !valid_name(name) {
        return Err(at.error(
            "name",
            format!("{name:?} is not a valid name"),
            "use letters, digits, - and _ only (at most 64)",
        ));
    }
    let tenant_id = at.required(
        "tenant_id",
        &t.tenant_id,
        "copy the Directory (tenant) ID from the app registration's overview in the Entra admin center",
    )?;
    if !is_guid(tenant_id) && !is_domain(tenant_id) {
        return Err(at.error(
            "tenant_id",
            format!("{tenant_id:?} is neither a GUID nor a domain name"),
            "use the Directory (tenant) ID, e.g. 00000000-0000-0000-0000-000000000000, or a verified \
             domain such as contoso.onmicrosoft.com",
        ));
    }
    let client_id = at.required(
        "client_id",
        &t.client_id,
        "copy the Application (client) ID from the app registration's overview",
    )?;
    if !is_guid(client_id) {
        return Err(at.error(
            "client_id",
            format!("{client_id:?} is not a GUID"),
            "use the Application (client) ID, e.g. 00000000-0000-0000-0000-000000000000",
        ));
    }
    let auth_kind = t.auth.unwrap_or(AuthKind::ClientSecret);
    let auth_name = match auth_kind {
        AuthKind::ClientSecret => "client_secret",
        AuthKind::Certificate => "certificate",
        AuthKind::Password => "password",
    };
    // The keys this block sets, read back from the raw struct rather than listed again here.
    let set = toml::Table::try_from(t).unwrap_or_default();
    let only_for = |keys: &[&str], method: &str| -> Result<(), ConfigError> {
        match keys.iter().find(|k| set.contains_key(**k)) {
            Some(k) => Err(at.error(
                k,
                format!("is only used with auth = \"{method}\", but auth = \"{auth_name}\""),
                format!("remove it, or set auth = \"{method}\""),
            )),
            None => Ok(()),
        }
    };
    let client_secret = |required| {
        secret_source(
            at,
            base,
            "client_secret",
            (&t.client_secret_env, &t.client_secret_file),
            required,
        )
    };
    let auth = match auth_kind {
        AuthKind::ClientSecret => {
            only_for(CERT_KEYS, "certificate")?;
            only_for(PASSWORD_KEYS, "password")?;
            AuthMethod::ClientSecret(client_secret(true)?.expect("required source"))
        }
        AuthKind::Certificate => {
            only_for(PASSWORD_KEYS, "password")?;
            only_for(CLIENT_SECRET_KEYS, "client_secret")?;
            let certificate_file = t.certificate_file.as_ref().ok_or_else(|| {
                at.error(
                    "certificate_file",
                    "is missing",
                    "name the PEM file of the certificate uploaded to the app registration \
                     (it may hold the private key too)",
                )
            })?;
            AuthMethod::Certificate {
                certificate_file: base.join(certificate_file),
                private_key_file: t.private_key_file.as_ref().map(|p| base.join(p)),
                algorithm: t.assertion_algorithm.unwrap_or(AssertionAlgorithm::Ps256),
            }
        }
        AuthKind::Password => {
            only_for(CERT_KEYS, "certificate")?;
            let username = at.required(
                "username",
                &t.username,
                "give the user principal name, e.g. username = \"svc-mde@contoso.com\"",
            )?;
            if !username.contains('@') {
                return Err(at.error(
                    "username",
                    format!("{username:?} is not a user principal name"),
                    "use the UPN, e.g. svc-mde@contoso.com",
                ));
            }
            let password = secret_source(
                at,
                base,
                "password",
                (&t.password_env, &t.password_file),
                true,
            )?;
            AuthMethod::Password {
                username: username.to_owned(),
                password: password.expect("required source"),
                client_secret: client_secret(false)?,
            }
        }
    };
    let cloud = t.cloud.unwrap_or(Cloud::Commercial);
    let region = t.region;
    if region.is_some() && cloud != Cloud::Commercial {
        return Err(at.error(
            "region",
            "regional hosts exist only in the commercial cloud",
            "remove region, or set cloud = \"commercial\"",
        ));
    }
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
    let login_url = match &t.login_url {
        Some(u) => endpoint_url(at, "login_url", u)?,
        None => Url::parse(login_default).expect("built-in URL"),
    };
    let api_url = match &t.api_url {
        Some(u) => endpoint_url(at, "api_url", u)?,
        None => Url::parse(&api_default).expect("built-in URL"),
    };
    let schedule = t
        .schedule
        .as_deref()
        .map(|text| {
            schedule(
                at,
                "schedule",
                text,
                "write six fields, seconds first, in UTC, e.g. \"0 */5 * * * *\"; leave it out to use [poll] schedule",
            )
        })
        .transpose()?;
    Ok(TenantConfig {
        schedule,
        key_prefix: at.0.to_owned(),
        name: name.to_owned(),
        tenant_id: tenant_id.to_owned(),
        client_id: client_id.to_ascii_lowercase(),
        auth,
        cloud,
        region,
        login_url,
        api_url,
        resource: resource.to_owned(),
        token_endpoint: t.token_endpoint.unwrap_or(TokenEndpoint::V2),
    })
}

/// A schedule must fire within this long: one that does not (`0 0 0 30 2 *`, 30 February) would
/// leave the service waiting for ever without a word.
const SCHEDULE_HORIZON: chrono::Duration = chrono::Duration::days(5 * 366);

/// The schedule at key `k`: a valid cron expression that fires within five years.
fn schedule(at: &At<'_>, k: &str, text: &str, fix: &str) -> Result<croner::Cron, ConfigError> {
    let cron = parse_cron(text)
        .map_err(|err| at.error(k, format!("{text:?} is not a cron schedule ({err})"), fix))?;
    let now = chrono::Utc::now();
    match cron.find_next_occurrence(&now, false) {
        Ok(next) if next - now <= SCHEDULE_HORIZON => Ok(cron),
        _ => Err(at.error(
            k,
            format!(
                "{text:?} never fires: no time in the next five years matches it (a day that does not exist, such as 30 February?)"
            ),
            fix,
        )),
    }
}

/// `NAME_env` or `NAME_file`, else the systemd credential `NAME` (when `required`).
fn secret_source(
    at: &At<'_>,
    base: &Path,
    name: &str,
    (env, file): (&Option<String>, &Option<String>),
    required: bool,
) -> Result<Option<SecretSource>, ConfigError> {
    let env_key = format!("{name}_env");
    let file_key = format!("{name}_file");
    match (env, file) {
        (Some(_), Some(_)) => Err(at.error(
            &file_key,
            format!("both {env_key} and {file_key} are set"),
            "keep one of them",
        )),
        (Some(var), None) => {
            let valid = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                // Not echoed: the usual mistake is pasting the secret itself here.
                return Err(at.error(
                    &env_key,
                    "is not the name of an environment variable (the value is not shown, in case it is the secret itself)",
                    format!(
                        "put the {name} in an environment variable and write that variable's name here, e.g. {env_key} = \"MDE_ALERTS_{}\"",
                        name.to_ascii_uppercase()
                    ),
                ));
            }
            Ok(Some(SecretSource::Env {
                key: at.key(&env_key),
                var: var.to_owned(),
            }))
        }
        (None, Some(file)) => {
            let path = base.join(file);
            if !file.contains('/') && !path.exists() {
                // A bare word that names no file may well be a pasted secret: not echoed.
                return Err(at.error(
                    &file_key,
                    "names no existing file (the value is not shown, in case it is the secret itself)",
                    format!(
                        "write the path of a file that holds only the {name}, e.g. \"/etc/mde-alerts/{name}\""
                    ),
                ));
            }
            Ok(Some(SecretSource::File {
                key: at.key(&file_key),
                path,
            }))
        }
        (None, None) if required => Ok(Some(SecretSource::Credential {
            name: name.to_owned(),
            key: at.key(&env_key),
        })),
        (None, None) => Ok(None),
    }
}

fn http(at: &At<'_>, h: &RawHttp, base: &Path) -> Result<HttpConfig, ConfigError> {
    let proxy = match &h.proxy {
        None => None,
        Some(text) => {
            let mut url = Url::parse(text).map_err(|e| {
                at.error(
                    "proxy",
                    format!("not a URL ({e})"),
                    "write it as \"http://host:port\" or \"http://user:password@host:port\"",
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(at.error(
                    "proxy",
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
    let ca_file = h.ca_file.as_ref().map(|p| base.join(p));
    if let Some(p) = &ca_file {
        let key = at.key("ca_file");
        let pem = super::files::read_capped(&key, p, "CA file", super::files::CA_FILE_CAP)?;
        if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
            return Err(at.error(
                "ca_file",
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

fn poll(at: &At<'_>, p: &RawPoll, loopback_only: bool) -> Result<PollConfig, ConfigError> {
    let schedule = schedule(
        at,
        "schedule",
        p.schedule.as_deref().unwrap_or("0 */5 * * * *"),
        "write six fields, seconds first, in UTC: \"0 */5 * * * *\" polls every five minutes",
    )?;
    let mut initial_lookback = dur(p.initial_lookback).unwrap_or(Duration::from_secs(30 * 86_400));
    if initial_lookback.is_zero() {
        return Err(at.error(
            "initial_lookback",
            "must be more than zero",
            "use e.g. \"30d\"",
        ));
    }
    if initial_lookback > MAX_LOOKBACK {
        tracing::warn!(
            key = %at.key("initial_lookback"),
            "Defender keeps alerts for 180 days; the first poll will reach back 180 days."
        );
        initial_lookback = MAX_LOOKBACK;
    }
    let overlap = dur(p.overlap).unwrap_or(Duration::from_secs(600));
    if overlap > Duration::from_secs(86_400) {
        return Err(at.error(
            "overlap",
            "is longer than a day",
            "the overlap only needs to cover Defender's ingestion delay; \"10m\" is plenty",
        ));
    }
    let page_size = match p.page_size {
        None => 10_000,
        Some(n @ 1..=10_000) => n as u32,
        Some(n) => {
            return Err(at.error(
                "page_size",
                format!("{n} is out of range"),
                "use a number from 1 to 10000 (Defender's maximum $top)",
            ));
        }
    };
    let request_timeout = dur(p.request_timeout).unwrap_or(Duration::from_secs(120));
    if request_timeout < Duration::from_secs(1) {
        return Err(at.error(
            "request_timeout",
            "is shorter than a second",
            "a page of 10,000 alerts can take a minute; use e.g. \"120s\"",
        ));
    }
    let quota = |k: &str, value: Option<i64>, max: u32| -> Result<u32, ConfigError> {
        match value {
            None => Ok(max),
            Some(n) if (1..=i64::from(max)).contains(&n) => Ok(n as u32),
            // Above Defender's quota only makes sense against a simulator or private endpoint.
            Some(n) if (1..=1_000_000).contains(&n) && loopback_only => Ok(n as u32),
            Some(n) => Err(at.error(
                k,
                format!("{n} is out of range"),
                format!(
                    "use 1 to {max} (Defender's quota); set it lower when other tools share the app"
                ),
            )),
        }
    };
    use crate::budget::{DEFENDER_PER_HOUR, DEFENDER_PER_MINUTE};
    Ok(PollConfig {
        calls_per_minute: quota("calls_per_minute", p.calls_per_minute, DEFENDER_PER_MINUTE)?,
        calls_per_hour: quota("calls_per_hour", p.calls_per_hour, DEFENDER_PER_HOUR)?,
        schedule,
        initial_lookback,
        overlap,
        page_size,
        expand_evidence: p.expand_evidence.unwrap_or(false),
        request_timeout,
    })
}

fn export(
    at: &At<'_>,
    x: &RawExport,
    base: &Path,
    tenants: &[TenantConfig],
) -> Result<ExportConfig, ConfigError> {
    let name = at.required(
        "name",
        &x.name,
        "give the export a name; files are called NAME-latest.EXT",
    )?;
    if !valid_name(name) {
        return Err(at.error(
            "name",
            format!("{name:?} is not a valid name"),
            "use letters, digits, - and _ only (it becomes part of file names)",
        ));
    }
    let format = x.format.ok_or_else(|| {
        at.error(
            "format",
            "is missing",
            "use one of: csv | json | ndjson | xlsx | report",
        )
    })?;
    let dir = x.dir.as_ref().map(|d| base.join(d)).ok_or_else(|| {
        at.error(
            "dir",
            "is missing",
            "name the directory the files go to, e.g. dir = \"/var/lib/mde-alerts/exports\"",
        )
    })?;
    let mut e = ExportConfig {
        name: name.to_owned(),
        dir,
        ..ExportConfig::ad_hoc(format)
    };
    let window = dur(x.window);
    if window.is_some_and(|w| w.is_zero()) {
        return Err(at.error("window", "must be more than zero", "use e.g. \"24h\""));
    }
    if format == ExportFormat::Report {
        e.report_window = window.unwrap_or(Duration::from_secs(86_400));
    }
    e.scope = match x.scope.unwrap_or(ScopeKind::All) {
        ScopeKind::All => Scope::All,
        ScopeKind::Open => Scope::Open,
        ScopeKind::Changed => Scope::Changed,
        ScopeKind::Window => Scope::Window(window.ok_or_else(|| {
            at.error(
                "window",
                "is missing (scope = \"window\" needs it)",
                "add window = \"24h\" (alerts updated within the last 24 hours)",
            )
        })?),
    };
    if window.is_some() && !matches!(e.scope, Scope::Window(_)) && format != ExportFormat::Report {
        return Err(at.error(
            "window",
            "is only used with scope = \"window\" or format = \"report\"",
            "remove it, or set scope = \"window\"",
        ));
    }
    if let Some(sev) = x.min_severity {
        use crate::alert::vocab::Severity;
        let severity = match sev {
            MinSeverity::Informational => Severity::Informational,
            MinSeverity::Low => Severity::Low,
            MinSeverity::Medium => Severity::Medium,
            MinSeverity::High => Severity::High,
        };
        e.filter.min_severity = Some(severity.rank());
    }
    e.filter.statuses = x.statuses.clone().unwrap_or_default();
    e.filter.categories = x.categories.clone().unwrap_or_default();
    e.filter.tenants = x.tenants.clone().unwrap_or_default();
    for t in &e.filter.tenants {
        if !tenants.iter().any(|x| &x.name == t) {
            let names: Vec<_> = tenants.iter().map(|x| x.name.as_str()).collect();
            return Err(at.error(
                "tenants",
                format!("no tenant is called {t:?}"),
                format!("use names from [[tenants]]: {}", names.join(", ")),
            ));
        }
    }
    if let Some(cols) = &x.columns {
        if cols.is_empty() {
            return Err(at.error(
                "columns",
                "is empty",
                "list at least one column, or remove the key for the default columns",
            ));
        }
        for c in cols {
            // Any property path is a column (fields Microsoft adds later, old-schema fields);
            // a name close to a known one only warns.
            match crate::alert::columns::check_column(c) {
                Err(problem) => {
                    let fix = "write an API property name or a dotted path into one, e.g. \"relatedUser.userName\"";
                    return Err(at.error("columns", problem, fix));
                }
                Ok(Some(hint)) => tracing::warn!(key = %at.key("columns"), "{hint}"),
                Ok(None) => {}
            }
        }
        e.columns = cols.clone();
    }
    e.evidence_separate = x.evidence == Some(EvidenceMode::Separate);
    if e.evidence_separate && !matches!(format, ExportFormat::Csv | ExportFormat::Xlsx) {
        return Err(at.error(
            "evidence",
            "is only used with format = \"csv\" or \"xlsx\" (JSON keeps evidence inside each alert)",
            "remove it",
        ));
    }
    if let Some(shape) = x.shape {
        // Only JSON has a shape to choose: CSV, XLSX and the report always read Graph alerts in
        // the MDE vocabulary, so a `shape` there would promise a choice that does not exist.
        if !matches!(format, ExportFormat::Json | ExportFormat::Ndjson) {
            return Err(at.error(
                "shape",
                "is only used with format = \"json\" or \"ndjson\" (CSV, XLSX and the report always use the MDE API's names and values)",
                "remove it",
            ));
        }
        e.shape = shape;
    }
    e.bom = x.bom.unwrap_or(true);
    e.crlf = x.line_ending != Some(LineEnding::Lf);
    e.formula_guard = x.formula_guard.unwrap_or(true);
    if let Some(text) = &x.schedule {
        e.schedule = Some(schedule(
            at,
            "schedule",
            text,
            "write six fields, seconds first, in UTC: \"0 0 6 * * *\" is every day at 06:00 UTC; leave it out to export after every poll",
        )?);
    }
    e.keep = match x.keep {
        None => 10,
        Some(n @ 1..=100_000) => n as usize,
        Some(n) => {
            return Err(at.error(
                "keep",
                format!("{n} is out of range"),
                "keep at least 1 timestamped file",
            ));
        }
    };
    if let Some(mode) = &x.file_mode {
        let parsed = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o600 == 0o600);
        e.file_mode = parsed.ok_or_else(|| {
            at.error(
                "file_mode",
                format!("{mode:?} is not a usable file mode"),
                "write octal digits in quotes, at least owner read-write, e.g. file_mode = \"0640\"",
            )
        })?;
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    /// A key of another sign-in method is named, not ignored.
    #[test]
    fn keys_of_another_sign_in_method_are_refused() {
        let text = "[[tenants]]\nname = \"a\"\ntenant_id = \"contoso.com\"\n\
                    client_id = \"11111111-2222-3333-4444-555555555555\"\n\
                    client_secret_env = \"X\"\n";
        for (extra, key) in [
            (
                "private_key_file = \"k.pem\"",
                "tenants[0].private_key_file",
            ),
            ("username = \"u@contoso.com\"", "tenants[0].username"),
            (
                "auth = \"certificate\"\ncertificate_file = \"c.pem\"",
                "tenants[0].client_secret_env",
            ),
        ] {
            let e = Config::parse(&format!("{text}{extra}\n"), Path::new("c.toml")).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.problem.contains("is only used with auth"), "{e}");
        }
    }
}
