//! The filters a person gives `export --out` and `report` on the command line: the same meaning
//! as a configured export's (`tenants`, `min_severity`, `statuses`, `categories`, and a window
//! on the last update), so that "Acme, last 7 days, High" needs no config edit.

use chrono::{DateTime, Utc};

use mde_alerts::alert::filter::Filter;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::alert::vocab::Severity;
use mde_alerts::config::raw::MinSeverity;
use mde_alerts::store::Selection;

/// The filter flags shared by `export` and `report`.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct FilterArgs {
    /// Only this tenant (a name from [[tenants]]); repeat for several.
    #[arg(long = "tenant", value_name = "NAME", requires = "out")]
    tenants: Vec<String>,
    /// Only this severity and above: informational, low, medium or high (a severity newer than
    /// these, such as Critical, counts as above high).
    #[arg(long, value_enum, value_name = "SEVERITY", requires = "out")]
    min_severity: Option<MinSeverity>,
    /// Only these statuses (New, InProgress, Resolved, …, any case); repeat or separate with
    /// commas.
    #[arg(
        long = "status",
        value_name = "STATUS",
        value_delimiter = ',',
        requires = "out"
    )]
    statuses: Vec<String>,
    /// Only these categories (any case); repeat or separate with commas.
    #[arg(
        long = "category",
        value_name = "CATEGORY",
        value_delimiter = ',',
        requires = "out"
    )]
    categories: Vec<String>,
    /// Only alerts last updated at or after this: a duration back from now (7d, 24h) or an RFC
    /// 3339 instant (2026-11-01T00:00:00Z).
    #[arg(long, value_name = "WHEN", value_parser = when_arg, requires = "out")]
    since: Option<When>,
    /// Only alerts last updated at or before this: a duration back from now or an RFC 3339
    /// instant.
    #[arg(long, value_name = "WHEN", value_parser = when_arg, requires = "out")]
    until: Option<When>,
}

/// An instant given as a duration back from now or as an RFC 3339 instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// This long before the command runs.
    Ago(std::time::Duration),
    /// This instant.
    At(DateTime<Utc>),
}

impl When {
    /// The instant, counting back from `now`.
    fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::Ago(d) => chrono::TimeDelta::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            When::At(t) => t,
        }
    }
}

/// Parses `--since`/`--until`: `7d`, `36h`, `1week` (humantime), or `2026-11-01T00:00:00Z`.
fn when_arg(text: &str) -> Result<When, String> {
    let text = text.trim();
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(When::Ago(d));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| When::At(t.with_timezone(&Utc)))
        .map_err(|_| {
            format!(
                "{text:?} is neither a duration (7d, 24h, 90min) nor an RFC 3339 instant (2026-11-01T00:00:00Z)"
            )
        })
}

/// Why the flags cannot be applied; the message names what to pass instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    /// `--tenant` names no configured tenant.
    #[error(
        "--tenant {name:?} is not a configured tenant; use a name from [[tenants]]: {}",
        configured_list(.configured)
    )]
    UnknownTenant {
        /// The name given.
        name: String,
        /// The configured tenants.
        configured: Vec<String>,
    },
    /// `--since` is after `--until`: nothing could match.
    #[error("--since ({since}) is after --until ({until}); nothing could match: swap them")]
    Empty {
        /// `--since`, as an instant.
        since: String,
        /// `--until`, as an instant.
        until: String,
    },
}

/// The configured tenants as the error lists them: the first ten, then "…".
fn configured_list(names: &[String]) -> String {
    if names.is_empty() {
        return "(none configured)".to_owned();
    }
    let mut shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    if names.len() > 10 {
        shown.push("…");
    }
    shown.join(", ")
}

impl FilterArgs {
    /// The list filters, checked against the `configured` tenants.
    fn filter(&self, configured: &[String]) -> Result<Filter, FilterError> {
        let mut tenants: Vec<String> = Vec::with_capacity(self.tenants.len());
        for t in &self.tenants {
            if !configured.contains(t) {
                return Err(FilterError::UnknownTenant {
                    name: t.clone(),
                    configured: configured.to_vec(),
                });
            }
            if !tenants.contains(t) {
                tenants.push(t.clone());
            }
        }
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Ok(Filter {
            min_severity: self.min_severity.map(|s| severity_of(s).rank()),
            statuses: clean(&self.statuses),
            categories: clean(&self.categories),
            tenants,
        })
    }

    /// Narrows `sel` by the flags, counting `--since`/`--until` back from `now`: the list
    /// filters replace the export's (an ad-hoc file has none of its own), the times narrow
    /// whatever window it already has.
    pub(crate) fn apply(
        &self,
        sel: &mut Selection,
        configured: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), FilterError> {
        sel.filter = self.filter(configured)?;
        let since = self.since.map(|w| w.at(now));
        let until = self.until.map(|w| w.at(now));
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(FilterError::Empty {
                since: s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                until: u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
        }
        if let Some(s) = since.map(ApiTime::from_chrono) {
            sel.updated_since = Some(sel.updated_since.map_or(s, |old| old.max(s)));
        }
        if let Some(u) = until.map(ApiTime::from_chrono) {
            sel.updated_until = Some(sel.updated_until.map_or(u, |old| old.min(u)));
        }
        Ok(())
    }
}

/// The severity a `min_severity` names (the config's mapping).
fn severity_of(s: MinSeverity) -> Severity {
    match s {
        MinSeverity::Informational => Severity::Informational,
        MinSeverity::Low => Severity::Low,
        MinSeverity::Medium => Severity::Medium,
        MinSeverity::High => Severity::High,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn when_is_a_duration_back_or_an_rfc3339_instant() {
        let now: DateTime<Utc> = "2026-12-06T00:00:00Z".parse().unwrap();
        assert_eq!(
            when_arg("7d").unwrap().at(now),
            "2026-11-29T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            when_arg("2026-11-01T02:00:00+02:00").unwrap().at(now),
            "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let e = when_arg("last tuesday").unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("7d"), "{e}");
    }

    #[test]
    fn an_unknown_tenant_is_refused_naming_the_configured_ones() {
        let args = FilterArgs {
            tenants: names(&["acme", "contosso"]),
            ..FilterArgs::default()
        };
        let e = args.filter(&names(&["acme", "contoso"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tenant \"contosso\" is not a configured tenant; use a name from [[tenants]]: acme, contoso"
        );
    }

    #[test]
    fn the_flags_mean_what_the_config_keys_mean() {
        let args = FilterArgs {
            tenants: names(&["acme", "acme"]),
            min_severity: Some(MinSeverity::Medium),
            statuses: names(&["New", " InProgress", ""]),
            categories: names(&["Malware"]),
            ..FilterArgs::default()
        };
        let f = args.filter(&names(&["acme"])).unwrap();
        assert_eq!(
            f,
            Filter {
                min_severity: Some(Severity::Medium.rank()),
                statuses: names(&["New", "InProgress"]),
                categories: names(&["Malware"]),
                tenants: names(&["acme"]),
            }
        );
    }

    #[test]
    fn times_narrow_the_selection_and_an_empty_range_is_refused() {
        let now: DateTime<Utc> = "2026-12-06T00:00:00Z".parse().unwrap();
        let args = FilterArgs {
            since: Some(When::Ago(std::time::Duration::from_secs(7 * 86_400))),
            until: Some(When::Ago(std::time::Duration::from_secs(86_400))),
            ..FilterArgs::default()
        };
        let mut sel = Selection::default();
        args.apply(&mut sel, &[], now).unwrap();
        assert_eq!(
            sel.updated_since.map(ApiTime::to_chrono),
            Some("2026-11-29T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            sel.updated_until.map(ApiTime::to_chrono),
            Some("2026-12-05T00:00:00Z".parse().unwrap())
        );
        let swapped = FilterArgs {
            since: args.until,
            until: args.since,
            ..FilterArgs::default()
        };
        let e = swapped
            .apply(&mut Selection::default(), &[], now)
            .unwrap_err();
        assert!(matches!(e, FilterError::Empty { .. }), "{e}");
    }
}
