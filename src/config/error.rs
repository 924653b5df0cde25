//! [`ConfigError`], and the translation of TOML and serde errors into it: every error names the
//! key as a path (`tenants[0].client_id`), says what was found and gives the fix; an unknown key
//! suggests the key the admin probably meant.

use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

/// A configuration problem: which key, what is wrong, and what to do about it. `main` maps it to
/// exit code 78 (`EX_CONFIG`), which the systemd unit lists in `RestartPreventExitStatus=` so a
/// broken file does not cause a restart loop.
///
/// Its `Display` is the problem alone; the fix is [`crate::error::Error::hint`]'s, which `main`
/// prints once as `fix: …` (and [`ConfigError::with_fix`] for a log line or a reload's event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {problem}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
pub struct ConfigError {
    /// The file the error is in, when there is one.
    pub(crate) file: Option<PathBuf>,
    /// The key, as a path (`poll.page_size`, `tenants[0].client_id`); `(file)` for the whole file.
    pub(crate) key: String,
    /// What is wrong, with what was found.
    pub(crate) problem: String,
    /// What to do.
    pub(crate) fix: String,
}

impl ConfigError {
    /// An error at `key`, not yet tied to a file.
    pub(crate) fn new(
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: None,
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The problem and its fix, for a place that shows it on its own (a log line, a reload).
    pub(crate) fn with_fix(&self) -> String {
        format!("{self}\n  fix: {}", self.fix)
    }

    pub(crate) fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    /// Attaches `file` unless the error already names one (an error in a file of
    /// `tenants_dir` names that file, not the config that points at the directory).
    pub(crate) fn or_in_file(self, file: &Path) -> Self {
        if self.file.is_some() {
            self
        } else {
            self.in_file(file)
        }
    }
}

/// Between a problem and its fix in a serde error message. Our own `Deserialize` impls (durations,
/// choices) can only hand serde a message, so they put both in it and [`from_serde`] splits them.
const FIX_MARK: &str = "\n  fix: ";

/// A deserialization error carrying a problem and its fix.
pub(crate) fn fail<E: serde::de::Error>(problem: impl AsRef<str>, fix: impl AsRef<str>) -> E {
    E::custom(format!("{}{FIX_MARK}{}", problem.as_ref(), fix.as_ref()))
}

/// A TOML syntax error, with anything secret taken out of the snippet of the file it shows.
pub(crate) fn syntax(e: &toml::de::Error) -> ConfigError {
    ConfigError::new(
        "(syntax)",
        format!(
            "the file is not valid TOML: {}",
            redact_snippet(e.to_string().trim_end())
        ),
        "fix the syntax at the line shown; config.example.toml has a working example",
    )
}

/// Turns an error from deserializing the raw structs into a [`ConfigError`] at its key.
///
/// serde reports its own errors as text in fixed shapes (`unknown field `x`, expected one of …`,
/// `invalid type: string "5", expected i64`); they are read back here and said the way an admin
/// needs it. Anything else is shown as it is.
pub(crate) fn from_serde(e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let segments: Vec<&Segment> = e.path().iter().collect();
    let msg = e.inner().message().to_owned();
    if let Some((problem, fix)) = msg.split_once(FIX_MARK) {
        return ConfigError::new(key_of(&segments), problem, fix);
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        return unknown_key(&segments, rest);
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        return wrong_type(&segments, found, expected);
    }
    ConfigError::new(
        key_of(&segments),
        msg,
        "see config.example.toml for what this key takes",
    )
}

/// `tenants[0].client_id` from serde's path.
fn key_of(segments: &[&Segment]) -> String {
    let mut key = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push('?');
            }
        }
    }
    key
}

/// `rest` is what follows "unknown field `": the key, then the keys allowed there in backticks.
fn unknown_key(segments: &[&Segment], rest: &str) -> ConfigError {
    let (field, known) = match rest.rsplit_once("`, expected ") {
        Some((field, expected)) => (
            field,
            expected.split('`').skip(1).step_by(2).collect::<Vec<_>>(),
        ),
        None => (
            rest.rsplit_once("`, there are no fields")
                .map_or(rest, |(f, _)| f),
            Vec::new(),
        ),
    };
    // The path ends at the unknown key itself, as serde reads a key before it judges it; a path
    // that does not is completed.
    let mut key = key_of(segments);
    if !matches!(segments.last(), Some(Segment::Map { key: k }) if k == field) {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
    }
    let best = known
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&field.to_lowercase(), c), *c))
        .min();
    // A secret written inline would be one "did you mean `client_secret_env`?" away from being
    // pasted into that key, which takes a variable's name: say where a secret goes instead.
    if matches!(field, "client_secret" | "password" | "private_key") {
        return ConfigError::new(
            key,
            "a secret is never written in the config (the value is not shown)",
            if field == "private_key" {
                "remove it; put the key in a PEM file only the service's user reads and name that file with private_key_file".to_owned()
            } else {
                format!(
                    "remove it; put the secret alone in a file only the service's user reads and name that file with \
                     {field}_file, or name an environment variable holding it with {field}_env (under systemd, a \
                     credential: see the README)"
                )
            },
        );
    }
    let fix = match best {
        Some((d, c)) if d <= 3 || c.contains(field) => format!("did you mean `{c}`?"),
        _ => format!("remove it; the keys allowed here are: {}", known.join(", ")),
    };
    ConfigError::new(key, "unknown key", fix)
}

/// A value of the wrong type: `found` and `expected` as serde words them.
fn wrong_type(segments: &[&Segment], found: &str, expected: &str) -> ConfigError {
    // An element of a list is reported at the list's key, as the list is what is written wrong.
    let list_at = segments
        .iter()
        .rposition(|s| !matches!(s, Segment::Seq { .. }))
        .map_or(0, |i| i + 1);
    let in_list = list_at < segments.len();
    let key_segments = &segments[..list_at];
    let name = match key_segments.last() {
        Some(Segment::Map { key }) => key.as_str(),
        _ => "",
    };
    let top_level = key_segments.len() == 1;
    let (expected, fix) =
        if expected.starts_with("struct ") && in_list || expected == "a sequence" && top_level {
            (
                format!("[[{name}]] blocks"),
                format!("write each one as a [[{name}]] block"),
            )
        } else if expected.starts_with("struct ") {
            (
                format!("a [{name}] table"),
                format!("write it as a [{name}] section"),
            )
        } else {
            let words = match expected {
                "i64" | "u64" | "u32" | "usize" => "an integer (no quotes)",
                "a boolean" => "true or false (no quotes)",
                "a string" if in_list => "a list of quoted strings, e.g. [\"a\", \"b\"]",
                "a string" => "a quoted string",
                "a sequence" => "a list of quoted strings, e.g. [\"a\", \"b\"]",
                other => other,
            };
            (words.to_owned(), format!("write it as {words}"))
        };
    ConfigError::new(
        key_of(key_segments),
        format!("expected {expected}, found {}", found_words(found)),
        fix,
    )
}

/// serde's `string "x"`, `integer `5``, `map` as the config's messages say them.
fn found_words(found: &str) -> String {
    match found {
        "map" => "a table".into(),
        "sequence" => "an array".into(),
        other => {
            let other = other.replace('`', "");
            match other.strip_prefix("floating point ") {
                Some(n) => format!("the number {n}"),
                None => format!("the {other}"),
            }
        }
    }
}

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
pub(crate) fn redact_userinfo(line: &str) -> String {
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
