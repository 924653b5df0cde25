//! The documentation's rules, checked on every `cargo test`: every relative link in the
//! repository's Markdown resolves to a file (and, into Markdown, to a heading), the README stays
//! short enough to read top to bottom, and comments say why the code is as it is rather than
//! which piece of work made it (a reader cannot open this project's tracker; an upstream bug is
//! cited as `owner/repo#N`, which these rules allow).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every file under `dir` whose name ends with `ext`, skipping build output and hidden entries.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if p.is_dir() {
            files(&p, ext, out);
        } else if name.ends_with(ext) {
            out.push(p);
        }
    }
}

/// The Markdown files a reader follows links through: every `*.md` in the repository.
fn markdown() -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(&root(), ".md", &mut out);
    out.sort();
    out
}

/// The lines of a Markdown text outside fenced code blocks, with their 1-based numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens; a repeated
/// heading gets `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, line) in prose(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while !out.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
    }
    out
}

/// The link destinations of one line: inline links and images `[text](dest)`, and reference
/// definitions `[label]: dest`. Code spans are blanked first, so `[x](y)` written as code is
/// not a link.
fn destinations(line: &str) -> Vec<String> {
    let spans = Regex::new(r"`+[^`]*`+").unwrap();
    let line = spans.replace_all(line, "C");
    let mut out = Vec::new();
    let definition = Regex::new(r"^\s*\[[^\]]+\]:\s+(\S+)").unwrap();
    if let Some(c) = definition.captures(&line) {
        out.push(c[1].to_owned());
    }
    let mut rest: &str = &line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let dest = after[..end].split_whitespace().next().unwrap_or("");
        out.push(dest.trim_matches(|c| c == '<' || c == '>').to_owned());
        rest = &after[end..];
    }
    out
}

fn is_external(dest: &str) -> bool {
    let scheme = dest.split(['/', '#']).next().unwrap_or("");
    scheme.contains(':')
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for md in markdown() {
        let text = std::fs::read_to_string(&md).unwrap();
        let rel = md.strip_prefix(root()).unwrap().display().to_string();
        for (n, line) in prose(&text) {
            for dest in destinations(line) {
                if dest.is_empty() || is_external(&dest) {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match dest.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (dest.as_str(), None),
                };
                let target = if path.is_empty() {
                    md.clone()
                } else {
                    md.parent().unwrap().join(path)
                };
                if !target.exists() {
                    broken.push(format!("{rel}:{n}: {dest}: no such file"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if target.extension().is_none_or(|e| e != "md") {
                    continue;
                }
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!("{rel}:{n}: {dest}: no heading with that anchor"));
                }
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} links found: is the parser blind?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_a_broken_file_and_a_broken_anchor() {
    // The checker's parts, on text whose answer is known: a link in code is not a link, and
    // anchors follow GitHub's rules.
    assert_eq!(
        destinations("see [a](docs/x.md#y-z) and `[b](c)` and ![i](p.png \"t\")"),
        ["docs/x.md#y-z", "p.png"]
    );
    assert_eq!(
        destinations("[G-alert]: https://example.com/a"),
        ["https://example.com/a"]
    );
    assert!(is_external("https://example.com"));
    assert!(!is_external("docs/design.md#5-contracts"));
    let a = anchors(
        "# T\n## Which API: Graph first\n```\n# not a heading\n```\n## `tenants_dir`\n## T",
    );
    assert!(a.contains("which-api-graph-first"), "{a:?}");
    assert!(a.contains("tenants_dir"), "{a:?}");
    assert!(a.contains("t-1"), "{a:?}");
    assert!(!a.contains("not-a-heading"), "{a:?}");
}

#[test]
fn the_readme_stays_short_enough_to_read_top_to_bottom() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 320,
        "README.md has {lines} lines: move reference material into docs/ and link it"
    );
}

/// What a comment or a user-facing page says when it narrates the project's own work instead
/// of the code: this project's issue numbers, work stops and review rounds.
fn narration() -> Regex {
    Regex::new(
        r"(?i)\bissue \d|\bthis stop\b|\breview #|adversarial review|found (by|in) review|\bthe review's\b|\bgraph_review|\bfn review_|\bfn (item|issue)_?\d+_|//[/!]?\s*#\d+:|//[/!]?\s*item \d+:",
    )
    .unwrap()
}

#[test]
fn the_narration_pattern_catches_issue_numbers_and_allows_upstream_bugs() {
    let n = narration();
    for said in [
        "// Issue 9 item 25: a schedule that never fires",
        "/// Regression (issue 12): every job",
        "// before this stop: 206 MiB",
        "/// Review #2: a store error",
        "/// #14: `--out` never replaces a symlink",
        "/// Item 24: a sign-in that cannot reach Entra",
        "fn review_2_a_store_error_mid_import_returns_instead_of_hanging() {",
        "async fn item14_out_refuses_anything_but_a_regular_file() {",
    ] {
        assert!(n.is_match(said), "{said}");
    }
    for fine in [
        "// tokio-cron-scheduler has no overlap guard (its issue #83)",
        "// see elastic/integrations#20234",
        "/// a token issued 3 minutes ago",
        "/// the first item 3 of the page",
        "fn items_of_a_page() {",
        "fn item_count_is_kept() {",
    ] {
        assert!(!n.is_match(fine), "{fine}");
    }
}

#[test]
fn no_comment_names_this_projects_issues_or_how_the_code_was_made() {
    let n = narration();
    let mut found = Vec::new();
    let mut sources = Vec::new();
    for dir in ["src", "crates", "tests", "examples"] {
        files(&root().join(dir), ".rs", &mut sources);
    }
    // This file spells the patterns out to test them.
    sources.retain(|f| !f.ends_with("tests/it/docs.rs"));
    for f in &sources {
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let comment = line.find("//").map(|at| &line[at..]);
            let name = line.trim_start().starts_with("fn ")
                || line.trim_start().starts_with("async fn ")
                || line.trim_start().starts_with("mod ");
            let said = match (comment, name) {
                (Some(c), _) => c,
                (None, true) => line,
                (None, false) => continue,
            };
            if n.is_match(said) {
                found.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    let mut pages = markdown();
    pages.retain(|p| !p.starts_with(root().join("crates")));
    for md in pages {
        let rel = md.strip_prefix(root()).unwrap().display().to_string();
        for (i, line) in std::fs::read_to_string(&md).unwrap().lines().enumerate() {
            if n.is_match(line) {
                found.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "say why the code is as it is, not which issue or review made it:\n{}",
        found.join("\n")
    );
}
