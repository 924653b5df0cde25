//! From the file as written ([`RawConfig`]) to the typed [`Config`]: defaults, relative paths,
//! the checks that are project knowledge (GUIDs, cloud and region pairing, loopback-only
//! `http://`, Defender's quotas and limits, schedules that fire) and the checks across keys.
//! Types were checked by serde; every error here names its key and gives the fix.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

mod mail;
mod tenant;

pub(crate) use tenant::is_guid;
use tenant::{tenants, valid_name};

use super::error::ConfigError;
use super::raw::{
    EvidenceMode, HumanDuration, LineEnding, LogFormat, MinSeverity, RawConfig, RawExport, RawHttp,
    RawPoll, ScopeKind,
};
use super::{
    Config, ExportConfig, ExportFormat, HealthConfig, HttpConfig, LogConfig, MAX_LOOKBACK,
    PollConfig, ProxyConfig, Scope, SourceKind, StoreConfig, TenantConfig, cron_interval,
    is_loopback, parse_cron,
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
        let (tenants, tenants_dir) = tenants(&raw, &path, base)?;
        // Quotas above Defender's are accepted only when every tenant talks to a local simulator.
        // An auto tenant may read either API: both hosts count, and both quotas.
        let apis = [SourceKind::Mde, SourceKind::Graph];
        let loopback_only = tenants.iter().all(|t| {
            apis.iter()
                .filter(|a| t.source.may_read(**a))
                .all(|a| is_loopback(t.endpoint(*a)))
        });
        let sources: HashSet<SourceKind> = tenants
            .iter()
            .flat_map(|t| apis.into_iter().filter(|a| t.source.may_read(*a)))
            .collect();
        let poll = poll(&At("poll"), &raw.poll, loopback_only, &sources)?;
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
            keep_revisions: keep_revisions(raw.store.keep_revisions)?,
        };
        let mail = mail::mail(&raw.mail, base)?;
        let exports = raw
            .exports
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let at = At(&format!("exports[{i}]"));
                let mut x = export(&at, e, base, &tenants)?;
                x.mail_to = mail::mail_to(&at, e, mail.as_ref())?;
                Ok(x)
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        check_export_names(&exports, &tenants)?;
        Ok(Config {
            path,
            tenants,
            tenants_dir,
            poll,
            store,
            exports,
            http,
            health,
            metrics_textfile,
            log,
            mail,
        })
    }
}

fn dur(d: Option<HumanDuration>) -> Option<Duration> {
    d.map(|d| d.0)
}

/// `[store] keep_revisions`: the default when absent, `None` (keep all) for 0, at least a day
/// otherwise: a shorter history would drop the versions an analyst looks back on the next
/// morning, and a daily prune cannot keep anything finer anyway.
fn keep_revisions(k: Option<super::raw::Retention>) -> Result<Option<Duration>, ConfigError> {
    match k.map(|k| k.0) {
        None => Ok(Some(super::DEFAULT_KEEP_REVISIONS)),
        Some(Duration::ZERO) => Ok(None),
        Some(d) if d < Duration::from_secs(86_400) => Err(ConfigError::new(
            "store.keep_revisions",
            format!("{} is shorter than a day", humantime::format_duration(d)),
            "keep at least \"1d\" of history (the default is \"400d\"), or 0 to keep every revision",
        )),
        Some(d) => Ok(Some(d)),
    }
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

/// Graph's largest `$top` (the security API's documented constraint; Elastic lowered its own
/// default to it after failures above).
pub(crate) const GRAPH_MAX_TOP: u32 = 1_000;

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
            format!(
                "make the day, month and weekday fields meet on a date that exists (days 1 to 28 are in every month); {fix}"
            ),
        )),
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

fn poll(
    at: &At<'_>,
    p: &RawPoll,
    loopback_only: bool,
    sources: &HashSet<SourceKind>,
) -> Result<PollConfig, ConfigError> {
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
        // Defender's maximum; a Graph tenant's `$top` is capped at Graph's 1,000.
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
    let concurrency = match p.concurrency {
        None => DEFAULT_CONCURRENCY,
        Some(n @ 1..=256) => n as usize,
        Some(n) => {
            return Err(at.error(
                "concurrency",
                format!("{n} is out of range"),
                "use a number from 1 to 256 (tenants polled at once by `poll`; each keeps its own budget)",
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
    use crate::budget::{DEFENDER_PER_HOUR, DEFENDER_PER_MINUTE, GRAPH_PER_HOUR, GRAPH_PER_MINUTE};
    // An explicit quota applies to every tenant, capped by the quota of the API each reads; it may
    // go up to the largest quota among the APIs configured.
    let (max_minute, max_hour) = if sources.contains(&SourceKind::Graph) {
        (GRAPH_PER_MINUTE, GRAPH_PER_HOUR)
    } else {
        (DEFENDER_PER_MINUTE, DEFENDER_PER_HOUR)
    };
    let quota = |k: &str, value: Option<i64>, max: u32| -> Result<Option<u32>, ConfigError> {
        match value {
            None => Ok(None),
            Some(n) if (1..=i64::from(max)).contains(&n) => Ok(Some(n as u32)),
            // Above Microsoft's quota only makes sense against a simulator or private endpoint.
            Some(n) if (1..=1_000_000).contains(&n) && loopback_only => Ok(Some(n as u32)),
            Some(n) => Err(at.error(
                k,
                format!("{n} is out of range"),
                format!(
                    "use 1 to {max} (the API's quota: Defender 100/min and 1,500/h, Graph 150/min); set it lower when other tools share the app"
                ),
            )),
        }
    };
    let minute = quota("calls_per_minute", p.calls_per_minute, max_minute)?;
    let hour = quota("calls_per_hour", p.calls_per_hour, max_hour)?;
    let cap = |v: Option<u32>, api: u32| match v {
        None => api,
        Some(n) if loopback_only => n,
        Some(n) => n.min(api),
    };
    Ok(PollConfig {
        calls_per_minute: cap(minute, DEFENDER_PER_MINUTE),
        calls_per_hour: cap(hour, DEFENDER_PER_HOUR),
        graph_calls_per_minute: cap(minute, GRAPH_PER_MINUTE),
        graph_calls_per_hour: cap(hour, GRAPH_PER_HOUR),
        graph_page_size: page_size.min(GRAPH_MAX_TOP),
        schedule,
        initial_lookback,
        overlap,
        page_size,
        expand_evidence: p.expand_evidence.unwrap_or(false),
        request_timeout,
        concurrency,
    })
}

/// Tenants a one-off `poll` reads at once: enough to poll 1,000 tenants in seconds, few enough
/// that a slow proxy or Entra is not flooded. Each tenant keeps its own budget whatever this is.
pub(crate) const DEFAULT_CONCURRENCY: usize = 16;

fn export(
    at: &At<'_>,
    x: &RawExport,
    base: &Path,
    tenants: &[Arc<TenantConfig>],
) -> Result<ExportConfig, ConfigError> {
    let name = at.required(
        "name",
        &x.name,
        "give the export a name; files are called NAME-latest.EXT",
    )?;
    let per_tenant = export_name(at, name)?;
    no_placeholder_outside_name(at, x)?;
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
        per_tenant,
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
    e.filter.tenants = export_tenants(at, x.tenants.as_deref(), tenants)?;
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
    if let Some(tf) = x.time_format {
        if format != ExportFormat::Csv {
            return Err(at.error(
                "time_format",
                "is only used with format = \"csv\" (XLSX cells are dates already; JSON keeps the API's text)",
                "remove it",
            ));
        }
        e.time_format = tf;
    }
    if let Some(tz) = &x.timezone {
        if format != ExportFormat::Report {
            return Err(at.error(
                "timezone",
                "is only used with format = \"report\" (files keep UTC, the API's time)",
                "remove it",
            ));
        }
        e.timezone = Some(time_zone(at, "timezone", tz)?);
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
    e.keep_daily = match x.keep_daily {
        None => 7,
        Some(n @ 0..=3_660) => n as usize,
        Some(n) => {
            return Err(at.error(
                "keep_daily",
                format!("{n} is out of range"),
                "use 0 (only the newest `keep` files) up to 3660 days",
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
        // Alerts are a security team's evidence: a mode that lets any account rewrite them is
        // refused, not applied.
        if e.file_mode & 0o002 != 0 {
            return Err(at.error(
                "file_mode",
                format!("{mode:?} lets every account on the machine change the exported alerts"),
                "leave others without write: \"0640\" (the group reads) or \"0644\" (everyone reads)",
            ));
        }
    }
    Ok(e)
}

/// Whether the export's `name` is per tenant: `{tenant}` once, and otherwise the characters of a
/// file name stem. Any other `{…}` is refused, so a typo (`{tennant}`) never becomes a literal
/// file name that every tenant's alerts go to.
fn export_name(at: &At<'_>, name: &str) -> Result<bool, ConfigError> {
    const FIX: &str = "use letters, digits, - and _ only (it becomes part of file names), and {tenant} for one file set per tenant, e.g. name = \"alerts-{tenant}\"";
    let mut rest = name;
    let mut literal = String::new();
    let mut placeholders = 0;
    while let Some(open) = rest.find(['{', '}']) {
        literal.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find('}').filter(|_| after.starts_with('{'));
        let Some(close) = close else {
            return Err(at.error("name", format!("{name:?} has an unmatched brace"), FIX));
        };
        let inner = &after[1..close];
        if inner != "tenant" {
            let hint = if strsim::levenshtein(&inner.to_ascii_lowercase(), "tenant") <= 3 {
                "did you mean {tenant}? "
            } else {
                ""
            };
            return Err(at.error(
                "name",
                format!("{{{inner}}} is not a placeholder (the only one is {{tenant}})"),
                format!("{hint}{FIX}"),
            ));
        }
        placeholders += 1;
        rest = &after[close + 1..];
    }
    literal.push_str(rest);
    if placeholders > 1 {
        return Err(at.error(
            "name",
            format!("{name:?} holds {{tenant}} {placeholders} times"),
            "write {tenant} once, e.g. name = \"alerts-{tenant}\"",
        ));
    }
    let stem_ok = literal.is_empty() && placeholders == 1 || valid_name(&literal);
    if !stem_ok || literal.len() > 128 {
        return Err(at.error("name", format!("{name:?} is not a valid name"), FIX));
    }
    Ok(placeholders == 1)
}

/// `{tenant}` is replaced only in `name`: in a directory or a filter it would be taken
/// literally, which is never what was meant.
fn no_placeholder_outside_name(at: &At<'_>, x: &RawExport) -> Result<(), ConfigError> {
    let lists = [
        ("tenants", &x.tenants),
        ("columns", &x.columns),
        ("statuses", &x.statuses),
        ("categories", &x.categories),
    ];
    let texts = [
        ("dir", x.dir.as_ref()),
        ("schedule", x.schedule.as_ref()),
        ("file_mode", x.file_mode.as_ref()),
    ];
    let found = texts
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .chain(
            lists
                .into_iter()
                .flat_map(|(k, v)| v.iter().flatten().map(move |s| (k, s))),
        )
        .find(|(_, v)| v.contains(super::TENANT_PLACEHOLDER));
    match found {
        None => Ok(()),
        Some((k, _)) => Err(at.error(
            k,
            "holds {tenant}, which is replaced only in name",
            "put {tenant} in name (name = \"alerts-{tenant}\") for one file set per tenant, all in dir; limit the tenants with tenants = [\"contoso\", …]",
        )),
    }
}

/// `tenants = [...]`: names from `[[tenants]]` (a typo gets a "did you mean"); absent is every
/// tenant, and an empty list is refused rather than read as "none" or "all".
/// An IANA time zone name (`Europe/Berlin`, `UTC`), from the database compiled in.
fn time_zone(at: &At<'_>, key: &str, name: &str) -> Result<chrono_tz::Tz, ConfigError> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        at.error(
            key,
            format!("{name:?} is not a time zone"),
            "use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
        )
    })
}

fn export_tenants(
    at: &At<'_>,
    listed: Option<&[String]>,
    tenants: &[Arc<TenantConfig>],
) -> Result<Vec<String>, ConfigError> {
    let Some(listed) = listed else {
        return Ok(Vec::new());
    };
    if listed.is_empty() {
        return Err(at.error(
            "tenants",
            "is empty",
            "list the tenants this export holds, e.g. tenants = [\"contoso\"], or remove the key for every tenant",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(listed.len());
    for t in listed {
        if !tenants.iter().any(|x| &x.name == t) {
            let close = tenants
                .iter()
                .map(|x| (strsim::levenshtein(&x.name, t), x.name.as_str()))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, n)| format!("did you mean {n:?}? "))
                .unwrap_or_default();
            let mut names: Vec<_> = tenants.iter().take(10).map(|x| x.name.as_str()).collect();
            if tenants.len() > 10 {
                names.push("…");
            }
            return Err(at.error(
                "tenants",
                format!("no tenant is called {t:?}"),
                format!("{close}use names from [[tenants]]: {}", names.join(", ")),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// No two exports write files of the same name: the names of every export's file sets (each
/// per-tenant set expanded over `tenants`, and the `-evidence` files) are distinct. Two exports
/// sharing a name would overwrite each other's `-latest` file and manifest, and share the
/// starting point of `scope = "changed"`, so one would skip alerts the other consumed.
pub(crate) fn check_export_names(
    exports: &[ExportConfig],
    tenants: &[Arc<TenantConfig>],
) -> Result<(), ConfigError> {
    let names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();
    let mut seen: std::collections::HashMap<String, (usize, Option<String>)> =
        std::collections::HashMap::new();
    let describe = |i: usize, t: &Option<String>| match t {
        Some(t) => format!("exports[{i}] (tenant {t:?})"),
        None => format!("exports[{i}]"),
    };
    for (i, e) in exports.iter().enumerate() {
        for (tenant, set) in e.set_names(&names) {
            let tenant = tenant.map(str::to_owned);
            let mut stems = vec![set.clone()];
            if e.evidence_separate {
                stems.push(format!("{set}-evidence"));
            }
            for stem in stems {
                if let Some((j, other)) = seen.get(&stem) {
                    return Err(ConfigError::new(
                        format!("exports[{i}].name"),
                        format!(
                            "{} and {} would both write files called {stem}-…",
                            describe(*j, other),
                            describe(i, &tenant)
                        ),
                        "give every export its own name; with {tenant}, keep a literal part no other export or tenant name repeats (e.g. \"alerts-{tenant}\" beside \"all-alerts\")",
                    ));
                }
                seen.insert(stem, (i, tenant.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const TWO_TENANTS: &str = "[[tenants]]\nname = \"contoso\"\ntenant_id = \"contoso.com\"\n\
        client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret_env = \"X\"\n\
        [[tenants]]\nname = \"fabrikam\"\ntenant_id = \"fabrikam.com\"\n\
        client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret_env = \"X\"\n";

    fn with_exports(blocks: &[&str]) -> Result<Config, crate::config::ConfigError> {
        let mut text = TWO_TENANTS.to_owned();
        for b in blocks {
            text.push_str("[[exports]]\nformat = \"csv\"\n");
            if !b.contains("dir =") {
                text.push_str("dir = \"out\"\n");
            }
            text.push_str(b);
            text.push('\n');
        }
        Config::parse(&text, Path::new("c.toml"))
    }

    #[test]
    fn tenant_in_the_name_means_one_set_per_tenant() {
        let c = with_exports(&["name = \"alerts-{tenant}\"", "name = \"{tenant}\""]).unwrap();
        assert!(c.exports[0].per_tenant && c.exports[1].per_tenant);
        assert_eq!(c.exports[0].name_for("contoso"), "alerts-contoso");
        let c = with_exports(&["name = \"alerts\""]).unwrap();
        assert!(!c.exports[0].per_tenant);
    }

    #[test]
    fn bad_placeholders_name_the_key() {
        for (block, key, says) in [
            (
                "name = \"alerts-{tennant}\"",
                "exports[0].name",
                "did you mean {tenant}",
            ),
            (
                "name = \"alerts-{date}\"",
                "exports[0].name",
                "not a placeholder",
            ),
            ("name = \"alerts-{tenant\"", "exports[0].name", "unmatched"),
            ("name = \"alerts-tenant}\"", "exports[0].name", "unmatched"),
            ("name = \"{tenant}-{tenant}\"", "exports[0].name", "2 times"),
            (
                "name = \"../{tenant}\"",
                "exports[0].name",
                "not a valid name",
            ),
            (
                "name = \"a\"\ndir = \"out/{tenant}\"",
                "exports[0].dir",
                "only in name",
            ),
            (
                "name = \"a\"\ntenants = [\"{tenant}\"]",
                "exports[0].tenants",
                "only in name",
            ),
            (
                "name = \"a\"\ncolumns = [\"{tenant}\"]",
                "exports[0].columns",
                "only in name",
            ),
        ] {
            let e = with_exports(&[block]).unwrap_err();
            assert_eq!(e.key, key, "{block}: {e}");
            assert!(e.with_fix().contains(says), "{block}: {e}");
        }
    }

    #[test]
    fn export_tenants_are_known_names_and_not_empty() {
        let e = with_exports(&["name = \"a\"\ntenants = [\"contosso\"]"]).unwrap_err();
        assert_eq!(e.key, "exports[0].tenants");
        assert!(e.with_fix().contains("did you mean \"contoso\""), "{e}");
        let e = with_exports(&["name = \"a\"\ntenants = []"]).unwrap_err();
        assert_eq!(e.key, "exports[0].tenants");
        assert!(e.problem.contains("empty"), "{e}");
        let c = with_exports(&["name = \"a-{tenant}\"\ntenants = [\"fabrikam\"]"]).unwrap();
        let names = ["contoso".to_owned(), "fabrikam".to_owned()];
        let sets: Vec<_> = c.exports[0]
            .set_names(&names)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(sets, ["a-fabrikam"]);
    }

    /// Expanded names that meet another export's (or its `-evidence` files') are refused.
    #[test]
    fn colliding_file_names_are_refused() {
        for blocks in [
            &["name = \"alerts-{tenant}\"", "name = \"alerts-contoso\""][..],
            &["name = \"alerts-contoso\"", "name = \"alerts-{tenant}\""],
            &["name = \"a\"", "name = \"a\""],
            &[
                "name = \"{tenant}\"",
                "name = \"x-{tenant}\"",
                "name = \"fabrikam\"",
            ],
            &[
                "name = \"a-{tenant}\"\nevidence = \"separate\"",
                "name = \"a-contoso-evidence\"",
            ],
        ] {
            let e = with_exports(blocks).unwrap_err();
            assert!(
                e.key.starts_with("exports[") && e.key.ends_with("].name"),
                "{blocks:?}: {e}"
            );
            assert!(e.problem.contains("would both write"), "{blocks:?}: {e}");
        }
        // A literal name no tenant's set takes is fine beside them.
        with_exports(&[
            "name = \"alerts-{tenant}\"",
            "name = \"alerts\"",
            "name = \"alerts-x\"",
        ])
        .unwrap();
        let limited = [
            "name = \"alerts-{tenant}\"\ntenants = [\"fabrikam\"]",
            "name = \"alerts-contoso\"",
        ];
        with_exports(&limited).unwrap();
    }

    /// `[store] keep_revisions`: the default, 0 in both spellings, a duration, and the errors
    /// naming the key.
    #[test]
    fn keep_revisions_is_parsed_and_bounded() {
        use std::time::Duration;
        let text = "[[tenants]]\nname = \"a\"\ntenant_id = \"contoso.com\"\n\
                    client_id = \"11111111-2222-3333-4444-555555555555\"\n\
                    client_secret_env = \"X\"\n[store]\n";
        let keep = |line: &str| {
            Config::parse(&format!("{text}{line}\n"), Path::new("c.toml"))
                .map(|c| c.store.keep_revisions)
        };
        assert_eq!(
            keep("").unwrap(),
            Some(crate::config::DEFAULT_KEEP_REVISIONS)
        );
        assert_eq!(keep("keep_revisions = 0").unwrap(), None);
        assert_eq!(keep("keep_revisions = \"0\"").unwrap(), None);
        assert_eq!(
            keep("keep_revisions = \"30d\"").unwrap(),
            Some(Duration::from_secs(30 * 86_400))
        );
        for (bad, says) in [
            ("keep_revisions = \"2h\"", "shorter than a day"),
            ("keep_revisions = 400", "no unit"),
            ("keep_revisions = \"forever\"", "not a duration"),
        ] {
            let e = keep(bad).unwrap_err();
            assert_eq!(e.key, "store.keep_revisions", "{bad}: {e}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    /// A GUID copied with its braces (PowerShell, the registry) is the same GUID, stored bare.
    #[test]
    fn a_guid_in_braces_is_accepted_and_stored_bare() {
        let text = "[[tenants]]\nname = \"a\"\n\
                    tenant_id = \"{AAAAAAAA-0000-1111-2222-333333333333}\"\n\
                    client_id = \" {11111111-2222-3333-4444-555555555555} \"\n\
                    client_secret_env = \"X\"\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.tenants[0].tenant_id,
            "AAAAAAAA-0000-1111-2222-333333333333"
        );
        assert_eq!(
            c.tenants[0].client_id,
            "11111111-2222-3333-4444-555555555555"
        );
        let half = text.replace(
            "{11111111-2222-3333-4444-555555555555}",
            "{11111111-2222-3333-4444-555555555555",
        );
        let e = Config::parse(&half, Path::new("c.toml")).unwrap_err();
        assert!(e.key.ends_with("client_id"), "{e}");
    }

    /// `time_format` belongs to CSV and `timezone` to the report; a zone is an IANA name.
    #[test]
    fn time_format_and_timezone_are_checked_where_they_mean_something() {
        let c = with_exports(&["name = \"a\"\ntime_format = \"excel\""]).unwrap();
        assert_eq!(c.exports[0].time_format, crate::config::TimeFormat::Excel);
        let e = with_exports(&["name = \"a\"\ntime_format = \"local\""]).unwrap_err();
        assert!(e.with_fix().contains("excel"), "{e}");
        let e = with_exports(&["name = \"a\"\ntimezone = \"Europe/Berlin\""]).unwrap_err();
        assert_eq!(e.key, "exports[0].timezone");
        let report = |tz: &str| {
            let text = format!(
                "{TWO_TENANTS}[[exports]]\nname = \"r\"\nformat = \"report\"\ndir = \"out\"\ntimezone = \"{tz}\"\n"
            );
            Config::parse(&text, Path::new("c.toml"))
        };
        assert_eq!(
            report("Europe/Berlin").unwrap().exports[0].timezone,
            Some(chrono_tz::Europe::Berlin)
        );
        let e = report("Mars/Olympus").unwrap_err();
        assert_eq!(e.key, "exports[0].timezone");
        assert!(e.with_fix().contains("IANA"), "{e}");
        let text = format!(
            "{TWO_TENANTS}[[exports]]\nname = \"r\"\nformat = \"report\"\ndir = \"out\"\ntime_format = \"excel\"\n"
        );
        let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.key, "exports[0].time_format");
    }

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
