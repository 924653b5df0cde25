//! How a name in `services` reads: one of Graph's `serviceSource` members, a typo of one, or a
//! product Microsoft added to Graph after this version was built.
//!
//! Graph's `serviceSource` is an evolvable enum: `microsoftSentinel`, `microsoftThreatIntelligence`
//! and `microsoftSecurityForAI` arrived years after the first members, and more will. A config
//! that names a new product must not need a new release, so a camelCase word far from every
//! known member is kept, with a warning; a word within a typo's reach of a known member is
//! an error, because reading it as a new product would filter every alert out (or make Graph
//! refuse every poll) instead of saying so.

use std::sync::{Mutex, PoisonError};

use super::SERVICE_SOURCES;

/// The largest edit distance (Damerau–Levenshtein, ignoring case) at which a name is taken for a
/// typo of a known member. Members differ from each other by far more (the closest pair,
/// `microsoftDefenderForCloud` and `microsoftDefenderForCloudApps`, by four), so two slips of
/// the keyboard cannot turn one member into another.
const TYPO_DISTANCE: usize = 2;

/// Longer than any `serviceSource` member by far (the longest has 30 letters).
const MAX_LEN: usize = 100;

/// What a configured `services` name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceName {
    /// A member of [`SERVICE_SOURCES`], in Graph's spelling whatever the case written.
    Known(&'static str),
    /// A camelCase word that is no member this version knows and no typo of one: kept, as a
    /// product Graph may have added since; `nearest` is the closest known member.
    New {
        name: &'static str,
        nearest: &'static str,
    },
    /// Within [`TYPO_DISTANCE`] of `nearest`.
    Typo { nearest: &'static str },
    /// Not a camelCase word, so no `serviceSource` member (and it must not reach the `$filter`).
    NotAName,
}

impl ServiceName {
    /// Reads one `services` entry (surrounding white space ignored).
    pub(crate) fn read(text: &str) -> ServiceName {
        let name = text.trim();
        let word = !name.is_empty()
            && name.len() <= MAX_LEN
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric());
        if !word {
            return ServiceName::NotAName;
        }
        if let Some(known) = SERVICE_SOURCES
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
        {
            return ServiceName::Known(known);
        }
        let (distance, nearest) = nearest(name);
        if distance <= TYPO_DISTANCE {
            ServiceName::Typo { nearest }
        } else if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            ServiceName::New {
                name: intern(name),
                nearest,
            }
        } else {
            // Graph writes its enum members in camelCase; a PascalCase name that is no known
            // member is refused rather than guessed at.
            ServiceName::NotAName
        }
    }

    /// Why `written` is refused, and the fix, for a config error on `services`; `None` for a
    /// name that is kept.
    pub(crate) fn error(&self, written: &str) -> Option<(String, String)> {
        let names = format!(
            "use Graph's serviceSource names: {}, or [\"all\"]",
            SERVICE_SOURCES.join(", ")
        );
        match self {
            ServiceName::Known(_) | ServiceName::New { .. } => None,
            ServiceName::Typo { nearest } => Some((
                format!("{written:?} is not a Graph serviceSource name"),
                format!("did you mean {nearest:?}? {names}"),
            )),
            ServiceName::NotAName => {
                let name = written.trim();
                let pascal = name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric());
                let camel = pascal.then(|| {
                    let mut c = name.chars();
                    c.next()
                        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
                        .unwrap_or_default()
                });
                Some((
                    format!(
                        "{written:?} is not a Graph serviceSource name (those are camelCase words such as microsoftDefenderForEndpoint)"
                    ),
                    match camel {
                        Some(c) => format!(
                            "write it in camelCase as Graph does ({c:?}) if it is a product Microsoft added since; otherwise {names}"
                        ),
                        None => names,
                    },
                ))
            }
        }
    }

    /// The warning for a name kept as a new product; `None` for every other kind.
    pub(crate) fn warning(&self) -> Option<String> {
        let ServiceName::New { name, nearest } = self else {
            return None;
        };
        Some(format!(
            "{name:?} is not one of Graph's serviceSource names this version knows (did you mean {nearest:?}?); it is kept in case Microsoft added it since; if Graph does not know it either, expect Graph to refuse this tenant's polls (HTTP 400, no alert read). Check the name against Graph's serviceSource list, or use [\"all\"]"
        ))
    }
}

/// The known member closest to `name`, ignoring case, and its distance.
fn nearest(name: &str) -> (usize, &'static str) {
    let lower = name.to_ascii_lowercase();
    SERVICE_SOURCES
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()),
                *k,
            )
        })
        .min_by_key(|(d, _)| *d)
        .unwrap_or((usize::MAX, SERVICE_SOURCES[0]))
}

/// A new name as the `&'static str` [`super::Services`] holds. Each distinct name is stored once
/// for the life of the process, so reloading a config does not grow it; a config names a few
/// products, each under [`MAX_LEN`] bytes.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let stored: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(stored);
    stored
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError, Services};

    /// Every `serviceSource` member: microsoftgraph/microsoft-graph-docs-contrib
    /// `api-reference/v1.0/resources/enums-security.md` ("serviceSource values") and the v1.0
    /// `$metadata`, which alone lists `microsoftInsiderRiskManagement` (`docs/defender-api.md`
    /// §4.2b).
    const REFERENCE: &[&str] = &[
        "unknown",
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
    ];

    #[test]
    fn every_member_of_graphs_service_source_is_known_in_any_case() {
        for m in REFERENCE {
            assert_eq!(ServiceName::read(m), ServiceName::Known(m), "{m}");
            let upper = m.to_ascii_uppercase();
            assert_eq!(ServiceName::read(&upper), ServiceName::Known(m), "{m}");
            assert_eq!(ServiceName::read(&format!(" {m}\t")), ServiceName::Known(m));
            assert_eq!(ServiceName::read(m).warning(), None);
        }
        for k in SERVICE_SOURCES {
            assert!(REFERENCE.contains(k), "{k} is not in Graph's reference");
        }
    }

    #[test]
    fn members_are_further_apart_than_a_typo() {
        for (i, a) in SERVICE_SOURCES.iter().enumerate() {
            for b in &SERVICE_SOURCES[i + 1..] {
                let d =
                    strsim::damerau_levenshtein(&a.to_ascii_lowercase(), &b.to_ascii_lowercase());
                assert!(d > TYPO_DISTANCE, "{a} and {b} are {d} apart");
            }
        }
    }

    #[test]
    fn a_typo_is_caught_and_a_new_camel_case_name_is_kept_with_a_warning() {
        for (typo, meant) in [
            (
                "microsoftDefenderForEndpiont",
                "microsoftDefenderForEndpoint",
            ),
            (
                "microsoftDefenderForEndpoints",
                "microsoftDefenderForEndpoint",
            ),
            ("microsoftSecurityForAl", "microsoftSecurityForAI"),
            ("MICROSOFTSENTINAL", "microsoftSentinel"),
            ("unknwon", "unknown"),
        ] {
            assert_eq!(
                ServiceName::read(typo),
                ServiceName::Typo { nearest: meant },
                "{typo}"
            );
        }
        let new = ServiceName::read("microsoftSecurityCopilot");
        assert_eq!(
            new,
            ServiceName::New {
                name: "microsoftSecurityCopilot",
                nearest: "microsoftSecurityForAI"
            }
        );
        let w = new.warning().unwrap();
        assert!(w.contains("\"microsoftSecurityCopilot\""), "{w}");
        assert!(w.contains("did you mean \"microsoftSecurityForAI\""), "{w}");
        assert!(w.contains("HTTP 400"), "{w}");
        for not in [
            "",
            "  ",
            "Microsoft Defender",
            "serviceSource eq 'x'",
            "micro-soft",
            "9lives",
            "MicrosoftSecurityCopilot",
            &"a".repeat(MAX_LEN + 1),
        ] {
            assert_eq!(ServiceName::read(not), ServiceName::NotAName, "{not:?}");
        }
    }

    #[test]
    fn a_new_name_is_stored_once() {
        let ServiceName::New { name: a, .. } = ServiceName::read("contosoShieldForToasters") else {
            panic!("not read as a new name");
        };
        let ServiceName::New { name: b, .. } = ServiceName::read(" contosoShieldForToasters ")
        else {
            panic!("not read as a new name");
        };
        assert!(std::ptr::eq(a, b));
    }

    fn services(list: &str) -> Result<Services, ConfigError> {
        let text = format!(
            r#"
[[tenants]]
name = "contoso"
tenant_id = "11111111-2222-3333-4444-555555555555"
client_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
client_secret_env = "TEST_SECRET_VAR"
source = "graph"
services = {list}

[store]
path = "alerts.db"
"#
        );
        Config::parse(&text, Path::new("/etc/x/config.toml")).map(|c| c.tenants[0].services.clone())
    }

    #[test]
    fn services_accepts_graphs_current_names_and_new_ones_and_refuses_typos() {
        assert_eq!(
            services(r#"["microsoftThreatIntelligence", "MICROSOFTSECURITYFORAI", "microsoftThreatIntelligence"]"#)
                .unwrap(),
            Services::Only(vec!["microsoftThreatIntelligence", "microsoftSecurityForAI"])
        );
        assert_eq!(
            services(r#"["microsoftDefenderForEndpoint", "microsoftSecurityCopilot"]"#).unwrap(),
            Services::Only(vec![
                "microsoftDefenderForEndpoint",
                "microsoftSecurityCopilot"
            ])
        );
        let e = services(r#"["microsoftDefenderForEndpiont"]"#).unwrap_err();
        assert_eq!(e.key, "tenants[0].services");
        assert!(
            e.fix
                .contains("did you mean \"microsoftDefenderForEndpoint\""),
            "{e}"
        );
        let e = services(r#"["Defender for Endpoint"]"#).unwrap_err();
        assert_eq!(e.key, "tenants[0].services");
        assert!(e.fix.contains("microsoftDefenderForEndpoint"), "{e}");
        assert!(e.fix.contains("[\"all\"]"), "{e}");
        let e = services(r#"["MicrosoftSecurityCopilot"]"#).unwrap_err();
        assert!(e.fix.contains("microsoftSecurityCopilot"), "camelCase: {e}");
    }
}
