//! The file as written: serde structs that mirror the TOML, key for key. This is the one place a
//! key is listed — the validation in `config::validate`, the "did you mean" hint, the test that
//! `config.example.toml` documents every key and the tests' config builder all read it from here.
//!
//! Everything is optional at this stage (`#[serde(default)]`), so that a missing key is reported
//! by the validation with its own fix rather than by serde's "missing field". Integers are `i64`
//! so that an out-of-range value reaches the range check and its message ("0 is out of range, use
//! 1 to 10000") instead of failing as a type error. Choices deserialize case-insensitively where
//! they always did, through `choice`.
//!
//! The fields carry no doc comments of their own: `config.example.toml` is the reference an admin
//! reads, and a test checks that it documents every key listed here.
#![allow(missing_docs)]

use std::time::Duration;

use serde::de::{DeserializeOwned, Deserializer, Error as _, IntoDeserializer};
use serde::{Deserialize, Serialize};

use super::error::fail;
use super::{
    AssertionAlgorithm, Cloud, ExportFormat, ExportShape, Region, SourceChoice, TimeFormat,
    TokenEndpoint,
};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// `[[tenants]]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<RawTenant>,
    /// `tenants_dir`: a directory of `*.toml` files holding more `[[tenants]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants_dir: Option<String>,
    /// `[poll]`.
    #[serde(skip_serializing_if = "is_default")]
    pub poll: RawPoll,
    /// `[store]`.
    #[serde(skip_serializing_if = "is_default")]
    pub store: RawStore,
    /// `[[exports]]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<RawExport>,
    /// `[http]`.
    #[serde(skip_serializing_if = "is_default")]
    pub http: RawHttp,
    /// `[health]`.
    #[serde(skip_serializing_if = "is_default")]
    pub health: RawHealth,
    /// `[metrics]`.
    #[serde(skip_serializing_if = "is_default")]
    pub metrics: RawMetrics,
    /// `[log]`.
    #[serde(skip_serializing_if = "is_default")]
    pub log: RawLog,
    /// `[mail]`.
    #[serde(skip_serializing_if = "is_default")]
    pub mail: RawMail,
}

/// One `[[tenants]]` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTenant {
    pub name: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub auth: Option<AuthKind>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    pub certificate_file: Option<String>,
    pub private_key_file: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub assertion_algorithm: Option<AssertionAlgorithm>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub cloud: Option<Cloud>,
    #[serde(deserialize_with = "choice")]
    pub region: Option<Region>,
    pub login_url: Option<String>,
    pub api_url: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub token_endpoint: Option<TokenEndpoint>,
    pub schedule: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub source: Option<SourceChoice>,
    pub graph_url: Option<String>,
    pub services: Option<Vec<String>>,
}

/// `[poll]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPoll {
    pub schedule: Option<String>,
    pub initial_lookback: Option<HumanDuration>,
    pub overlap: Option<HumanDuration>,
    pub page_size: Option<i64>,
    pub expand_evidence: Option<bool>,
    pub request_timeout: Option<HumanDuration>,
    pub calls_per_minute: Option<i64>,
    pub calls_per_hour: Option<i64>,
    pub concurrency: Option<i64>,
}

/// `[store]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<String>,
    pub(crate) keep_revisions: Option<Retention>,
}

/// `[store] keep_revisions`: a duration (`"400d"`), or `0` / `"0"` for "keep every revision".
/// Written by hand (not [`HumanDuration`]) because a bare TOML `0` is the natural way to say
/// "keep all" and a string-only type would reject it with serde's type message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Retention(pub Duration);

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const FIX: &str =
            "write a duration such as \"400d\" or \"2years\", or 0 to keep every revision";
        impl serde::de::Visitor<'_> for V {
            type Value = Retention;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"400d\", or 0")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Retention, E> {
                match v {
                    0 => Ok(Retention(Duration::ZERO)),
                    _ => Err(fail(format!("{v} has no unit"), FIX)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Retention, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Retention, E> {
                humantime::parse_duration(s)
                    .map(Retention)
                    .map_err(|e| fail(format!("{s:?} is not a duration ({e})"), FIX))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// One `[[exports]]` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawExport {
    pub name: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub format: Option<ExportFormat>,
    pub dir: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub scope: Option<ScopeKind>,
    pub window: Option<HumanDuration>,
    #[serde(deserialize_with = "choice")]
    pub min_severity: Option<MinSeverity>,
    pub statuses: Option<Vec<String>>,
    pub categories: Option<Vec<String>>,
    pub tenants: Option<Vec<String>>,
    pub columns: Option<Vec<String>>,
    #[serde(deserialize_with = "choice")]
    pub evidence: Option<EvidenceMode>,
    pub bom: Option<bool>,
    #[serde(deserialize_with = "choice")]
    pub line_ending: Option<LineEnding>,
    pub formula_guard: Option<bool>,
    pub schedule: Option<String>,
    pub keep: Option<i64>,
    pub keep_daily: Option<i64>,
    pub file_mode: Option<String>,
    #[serde(deserialize_with = "choice")]
    pub shape: Option<ExportShape>,
    #[serde(deserialize_with = "choice")]
    pub time_format: Option<TimeFormat>,
    pub timezone: Option<String>,
    pub mail_to: Option<Vec<String>>,
}

impl Choice for TimeFormat {
    const WHAT: &'static str = "a time format";
    const FIX: Option<&'static str> = Some(
        "use \"iso\" (ISO 8601 as the API sent it, the default) or \"excel\" (2026-11-16 19:43:38, UTC, read as a date by spreadsheets)",
    );
}

impl Choice for ExportShape {
    const WHAT: &'static str = "a JSON shape";
    const FIX: Option<&'static str> = Some(
        "use \"verbatim\" (each alert as the API returned it) or \"mde\" (Graph alerts in the MDE API's shape)",
    );
    const ANY_CASE: bool = false;
}

/// `[http]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    pub(crate) proxy: Option<String>,
    pub ca_file: Option<String>,
}

/// `[health]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHealth {
    pub max_age: Option<HumanDuration>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMetrics {
    pub textfile: Option<String>,
}

/// `[mail]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMail {
    pub smtp: Option<String>,
    pub from: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    #[serde(deserialize_with = "choice")]
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// Leaves a section nobody set out of the written file.
fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// The file's sections and the raw struct of each, for listing keys: `""` is the top level.
pub(crate) fn sections() -> Vec<(&'static str, &'static [&'static str])> {
    use super::introspect::fields;
    vec![
        ("", fields::<RawConfig>()),
        ("tenants", fields::<RawTenant>()),
        ("poll", fields::<RawPoll>()),
        ("store", fields::<RawStore>()),
        ("exports", fields::<RawExport>()),
        ("http", fields::<RawHttp>()),
        ("health", fields::<RawHealth>()),
        ("metrics", fields::<RawMetrics>()),
        ("log", fields::<RawLog>()),
        ("mail", fields::<RawMail>()),
    ]
}

/// A humantime duration (`"90s"`, `"10m"`, `"30d"`). Written by hand rather than with
/// `humantime-serde` so that a bad value keeps its message and its fix (see `error::fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                fail(
                    format!("{s:?} is not a duration ({e})"),
                    "write a number with a unit, e.g. \"90s\", \"10m\", \"12h\", \"30d\"",
                )
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

/// A choice of fixed words, deserialized from a string by [`choice`] with the message and fix
/// we give for it. The words are the enum's serde names (`rename_all`).
trait Choice: DeserializeOwned + 'static {
    /// What the value should be, after "is not": "a sign-in method".
    const WHAT: &'static str = "one of the allowed values";
    /// The fix; by default "use one of: " and the words.
    const FIX: Option<&'static str> = None;
    /// Whether `CSV` is taken for `csv`.
    const ANY_CASE: bool = true;
}

/// Deserializes an optional [`Choice`]: any case where the key always took any case, and a
/// message listing the words otherwise.
fn choice<'de, D: Deserializer<'de>, T: Choice>(d: D) -> Result<Option<T>, D::Error> {
    let s = String::deserialize(d)?;
    let names = super::introspect::variants::<T>();
    let found = names.iter().find(|n| {
        if T::ANY_CASE {
            n.eq_ignore_ascii_case(&s)
        } else {
            **n == s
        }
    });
    match found {
        Some(n) => {
            let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                n.into_deserializer();
            T::deserialize(de).map(Some).map_err(D::Error::custom)
        }
        None => Err(fail(
            format!("{s:?} is not {}", T::WHAT),
            T::FIX
                .map(str::to_owned)
                .unwrap_or_else(|| format!("use one of: {}", names.join(" | "))),
        )),
    }
}

/// `auth`: how a tenant signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    ClientSecret,
    Certificate,
    Password,
}

impl Choice for AuthKind {
    const WHAT: &'static str = "a sign-in method";
    const ANY_CASE: bool = false;
}

/// `scope`: which alerts an export holds (`window` takes its length from `window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    All,
    Open,
    Window,
    Changed,
}

impl Choice for ScopeKind {
    const WHAT: &'static str = "a scope";
    const FIX: Option<&'static str> =
        Some("use one of: all | open | window (with window = \"24h\") | changed");
    const ANY_CASE: bool = false;
}

/// `min_severity`: the documented severities, in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
pub enum MinSeverity {
    Informational,
    Low,
    Medium,
    High,
}

impl Choice for MinSeverity {
    const WHAT: &'static str = "a severity";
}

/// `evidence`: evidence in a `NAME-evidence` file, or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceMode {
    Separate,
    Omit,
}

impl Choice for EvidenceMode {
    const WHAT: &'static str = "an evidence mode";
    const FIX: Option<&'static str> =
        Some("use \"separate\" (a NAME-evidence file, one row per item) or \"omit\"");
    const ANY_CASE: bool = false;
}

/// `line_ending` of CSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineEnding {
    Crlf,
    Lf,
}

impl Choice for LineEnding {}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Choice for LogFormat {}

impl Choice for Cloud {}
impl Choice for SourceChoice {
    const WHAT: &'static str = "an alerts API";
    const FIX: Option<&'static str> = Some(
        "use \"auto\" (the default: Microsoft Graph when the app may read it, else the Defender for Endpoint API), \"graph\" (Microsoft Graph security/alerts_v2) or \"mde\" (the Defender for Endpoint API, which Microsoft's MC1220762 says stops on 2027-02-01)",
    );
}
impl Choice for Region {}
impl Choice for TokenEndpoint {}
impl Choice for AssertionAlgorithm {}
impl Choice for ExportFormat {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' config builder writes these structs with `toml`: what it writes must read back
    /// the same, choices and durations included.
    #[test]
    fn a_raw_config_round_trips_through_toml() {
        let raw: RawConfig = toml::from_str(include_str!("../../config.example.toml")).unwrap();
        let text = toml::to_string(&raw).unwrap();
        let again: RawConfig = toml::from_str(&text).unwrap();
        assert_eq!(raw, again, "{text}");
        assert!(
            !text.contains("[http]"),
            "unset sections are left out: {text}"
        );
    }
}
