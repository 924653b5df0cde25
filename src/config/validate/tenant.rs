//! One `[[tenants]]` block: names and IDs, the sign-in method and its secrets, the cloud's hosts
//! (the Defender API's and Graph's), the source and the Defender products it reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use super::{At, endpoint_url, schedule};
use crate::config::error::ConfigError;
use crate::config::raw::{AuthKind, RawConfig, RawTenant};
use crate::config::services::ServiceName;
use crate::config::tenants_dir;
use crate::config::{
    AssertionAlgorithm, AuthMethod, Cloud, MDE_RESOURCE, SecretSource, Services, SourceChoice,
    TenantConfig, TokenEndpoint,
};

/// A Directory (tenant) ID, an Application (client) ID: `8-4-4-4-12` hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<_> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A GUID as the Entra admin center, PowerShell and the registry write it, `{…}` braces and
/// surrounding spaces included, as the bare GUID the token endpoint wants; anything else as it is.
fn unbraced(s: &str) -> &str {
    let t = s.trim();
    match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        Some(inner) if is_guid(inner.trim()) => inner.trim(),
        _ if is_guid(t) => t,
        _ => s,
    }
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

pub(super) fn valid_name(s: &str) -> bool {
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

/// Every tenant: the main file's `[[tenants]]` first, then each file of `tenants_dir` in name
/// order. Returns them and the directory, resolved like every other path (from the main file's
/// directory). Names are unique across all files; an error in a tenants file names that file.
pub(super) fn tenants(
    raw: &RawConfig,
    path: &Path,
    base: &Path,
) -> Result<(Vec<Arc<TenantConfig>>, Option<PathBuf>), ConfigError> {
    // Thousands of tenants share a few schedules: each text is parsed and checked once (croner
    // takes ~0.1 ms per expression, a second for 10,000 tenants).
    let mut crons = Crons::new();
    let mut tenants = raw
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            tenant(&At(&format!("tenants[{i}]")), t, base, path, &mut crons).map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dir = raw.tenants_dir.as_ref().map(|d| base.join(d));
    if let Some(dir) = &dir {
        let files = tenants_dir::list(dir, path)?;
        tenants.extend(from_files(&files)?);
    }
    if tenants.is_empty() {
        let fix = match &dir {
            None => "add a [[tenants]] block with name, tenant_id and client_id".to_owned(),
            Some(d) => format!(
                "add a [[tenants]] block with name, tenant_id and client_id, here or in a *.toml file in {}",
                d.display()
            ),
        };
        return Err(ConfigError::new("tenants", "no tenant is configured", fix));
    }
    let mut seen: HashMap<&str, &Arc<TenantConfig>> = HashMap::with_capacity(tenants.len());
    for t in &tenants {
        if let Some(first) = seen.insert(&t.name, t) {
            let e = ConfigError::new(
                t.key("name"),
                format!(
                    "the name {:?} is used by two tenants: also by {} in {}",
                    t.name,
                    first.key_prefix,
                    first.file.display()
                ),
                "give every tenant its own name (names are unique across the config and every file in tenants_dir)",
            );
            // An inline tenant's error gets the main file when `Config::load` attaches it.
            return Err(if t.file == path {
                e
            } else {
                e.in_file(&t.file)
            });
        }
    }
    // The same Entra tenant twice would read every alert twice: two rows per alert in every
    // export, every High alert twice in the report, twice the API budget.
    let mut ids: HashMap<String, &Arc<TenantConfig>> = HashMap::with_capacity(tenants.len());
    for t in &tenants {
        if let Some(first) = ids.insert(t.tenant_id.to_ascii_lowercase(), t) {
            let e = ConfigError::new(
                t.key("tenant_id"),
                format!(
                    "tenant {:?} reads the same Entra tenant ({}) as tenant {:?} ({} in {}): every alert would be stored and exported twice",
                    t.name,
                    t.tenant_id,
                    first.name,
                    first.key_prefix,
                    first.file.display()
                ),
                "keep one [[tenants]] block per Entra tenant: to read more Defender products through Graph, list them in that block's services; to try the other API, use `mde-alerts compare`",
            );
            return Err(if t.file == path {
                e
            } else {
                e.in_file(&t.file)
            });
        }
    }
    Ok((tenants, dir))
}

/// The tenants of `files`, in order. A provider's directory holds thousands of files, so they are
/// read and validated on every core (10,000 files in a fraction of a second); the error reported
/// is the first in file order, as a sequential load would report it. Threads by hand rather than
/// a crate: this is the one place, and `std::thread::scope` is enough.
fn from_files(files: &[PathBuf]) -> Result<Vec<Arc<TenantConfig>>, ConfigError> {
    /// Below this many files one thread is quicker than starting more.
    const PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().div_ceil(PER_THREAD))
        .max(1);
    if threads == 1 {
        return chunk(files);
    }
    let size = files.len().div_ceil(threads);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(size)
            .map(|part| scope.spawn(move || chunk(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut tenants = Vec::with_capacity(files.len());
    for r in results {
        tenants.extend(r?);
    }
    Ok(tenants)
}

/// The tenants of `files`, read and validated one after another; stops at the first error.
fn chunk(files: &[PathBuf]) -> Result<Vec<Arc<TenantConfig>>, ConfigError> {
    let mut crons = Crons::new();
    let mut tenants = Vec::with_capacity(files.len());
    for file in files {
        let raw = tenants_dir::read_file(file).map_err(|e| e.in_file(file))?;
        // Relative paths in a tenants file (secret files, certificates) are taken from the
        // tenants file's own directory: what an admin reading that file expects.
        let base = file.parent().unwrap_or(Path::new("."));
        for (i, t) in raw.iter().enumerate() {
            let at = At(&format!("tenants[{i}]"));
            tenants.push(Arc::new(
                tenant(&at, t, base, file, &mut crons).map_err(|e| e.in_file(file))?,
            ));
        }
    }
    Ok(tenants)
}

/// The schedules already checked, by their text.
type Crons = HashMap<String, std::sync::Arc<croner::Cron>>;

/// One `[[tenants]]` block, written in `file`; relative paths are taken from `base`.
fn tenant(
    at: &At<'_>,
    t: &RawTenant,
    base: &Path,
    file: &Path,
    crons: &mut Crons,
) -> Result<TenantConfig, ConfigError> {
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
    let tenant_id = unbraced(tenant_id);
    if !is_guid(tenant_id) && !is_domain(tenant_id) {
        return Err(at.error(
            "tenant_id",
            format!("{} is neither a GUID nor a domain name", shown_id(tenant_id)),
            "use the Directory (tenant) ID from the app registration's Overview (a GUID: 8-4-4-4-12 \
             hex digits), or a verified domain such as contoso.onmicrosoft.com",
        ));
    }
    let client_id = at.required(
        "client_id",
        &t.client_id,
        "copy the Application (client) ID from the app registration's overview",
    )?;
    let client_id = unbraced(client_id);
    if !is_guid(client_id) {
        return Err(at.error(
            "client_id",
            format!("{} is not a GUID", shown_id(client_id)),
            "use the Application (client) ID from the app registration's Overview (a GUID: \
             8-4-4-4-12 hex digits)",
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
    let source = t.source.unwrap_or_default();
    if region.is_some() && source == SourceChoice::Graph {
        return Err(at.error(
            "region",
            "Microsoft Graph has no regional hosts (region picks a Defender API host)",
            "remove region: a Graph tenant reads https://graph.microsoft.com (or its cloud's Graph host)",
        ));
    }
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
    // Graph's host per cloud: GCC moves from its own Defender host to the *global* Graph host.
    let (graph_default, graph_resource) = match cloud {
        Cloud::Commercial | Cloud::Gcc => (crate::config::GRAPH_ROOT, crate::config::GRAPH_ROOT),
        Cloud::GccHigh => ("https://graph.microsoft.us", "https://graph.microsoft.us"),
        Cloud::Dod => (
            "https://dod-graph.microsoft.us",
            "https://dod-graph.microsoft.us",
        ),
    };
    let graph_url = match &t.graph_url {
        Some(u) => endpoint_url(at, "graph_url", u)?,
        None => Url::parse(graph_default).expect("built-in URL"),
    };
    // The root, not an API version: mde-alerts adds `/v1.0/security/alerts_v2` itself.
    if let Some(version) = graph_url
        .path_segments()
        .into_iter()
        .flatten()
        .find(|s| s.eq_ignore_ascii_case("v1.0") || s.eq_ignore_ascii_case("beta"))
    {
        return Err(at.error(
            "graph_url",
            format!("{graph_url} includes the API version /{version}"),
            "give only Graph's root, e.g. \"https://graph.microsoft.com\": mde-alerts adds /v1.0/security/alerts_v2 itself",
        ));
    }
    let services = services(at, t.services.as_deref())?;
    if t.services.is_some() && source == SourceChoice::Mde {
        tracing::warn!(
            key = %at.key("services"),
            "services applies when the tenant reads Microsoft Graph (source = \"auto\" or \"graph\"); the MDE API returns endpoint alerts only."
        );
    }
    let schedule = match t.schedule.as_deref() {
        None => None,
        Some(text) => Some(match crons.get(text) {
            Some(cron) => cron.clone(),
            None => {
                let cron = schedule(
                    at,
                    "schedule",
                    text,
                    "write six fields, seconds first, in UTC, e.g. \"0 */5 * * * *\"; leave it out to use [poll] schedule",
                )?;
                let cron = std::sync::Arc::new(cron);
                crons.insert(text.to_owned(), cron.clone());
                cron
            }
        }),
    };
    Ok(TenantConfig {
        schedule,
        key_prefix: at.0.to_owned(),
        file: file.to_path_buf(),
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
        source,
        graph_url,
        graph_resource: graph_resource.to_owned(),
        services,
    })
}

/// `services`: Graph's `serviceSource` names (any case), a camelCase name Graph may have added
/// since (with a warning), or `["all"]`; a typo of a known name is an error.
fn services(at: &At<'_>, list: Option<&[String]>) -> Result<Services, ConfigError> {
    let Some(list) = list else {
        return Ok(Services::endpoint());
    };
    if list.is_empty() {
        return Err(at.error(
            "services",
            "is empty, so no alert would be exported",
            "leave it out for endpoint alerts only, or write [\"all\"] for every Defender product",
        ));
    }
    if list.iter().any(|s| s.eq_ignore_ascii_case("all")) {
        if list.len() > 1 {
            return Err(at.error(
                "services",
                "\"all\" is given together with other names",
                "write either [\"all\"] or a list of products",
            ));
        }
        return Ok(Services::All);
    }
    let mut out: Vec<&'static str> = Vec::new();
    for written in list {
        let name = ServiceName::read(written);
        if let Some((problem, fix)) = name.error(written) {
            return Err(at.error("services", problem, fix));
        }
        if let Some(warning) = name.warning() {
            tracing::warn!(key = %at.key("services"), "{warning}");
        }
        let (ServiceName::Known(kept) | ServiceName::New { name: kept, .. }) = name else {
            continue;
        };
        if !out.contains(&kept) {
            out.push(kept);
        }
    }
    Ok(Services::Only(out))
}

/// `NAME_env` or `NAME_file`, else the systemd credential `NAME` (when `required`).
pub(super) fn secret_source(
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

/// An ID as an error may show it: a secret's value pasted into `client_id` or `tenant_id` (the
/// fields sit side by side in the portal) would otherwise reach the terminal and the journal.
/// Only what an ID or a domain is made of is shown.
fn shown_id(value: &str) -> String {
    let id_like = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '{' | '}'));
    if id_like {
        format!("{value:?}")
    } else {
        "the value (not shown: it may be a secret)".to_owned()
    }
}
