//! The layout's rules, checked on every `cargo test`: modules follow the data's path
//! with no import circle, `main.rs` stays thin, and no source file grows past ~800 lines of code
//! (tests, comments and blank lines not counted).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file: up to its `#[cfg(test)]` module, without comments and blank lines.
fn code(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(str::to_owned)
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[test]
fn no_import_circle_between_the_library_modules() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if rel == "lib.rs" || rel == "main.rs" || rel.starts_with("cli/") {
            continue;
        }
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        for line in code(f) {
            for part in line.split("crate::").skip(1) {
                let target: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !target.is_empty() && target != module {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    // A module is on a circle when it can reach itself.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = edges[start].iter().collect();
        while let Some(m) = stack.pop() {
            assert_ne!(
                m, start,
                "`{start}` imports itself through a circle: {edges:#?}"
            );
            if seen.insert(m.clone()) {
                stack.extend(edges.get(m).into_iter().flatten());
            }
        }
    }
}

#[test]
fn main_is_thin_and_no_file_is_too_long() {
    let main = std::fs::read_to_string(root().join("src/main.rs")).unwrap();
    assert!(
        main.lines().count() < 100,
        "src/main.rs has grown past 100 lines"
    );
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("crates"), &mut files);
    for f in files {
        // Test-only files (declared under `#[cfg(test)]`) are not product code.
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let n = code(&f).len();
        assert!(
            n <= 820,
            "{} has {n} lines of code (at most ~800)",
            f.display()
        );
    }
}

/// The modules a file of `src/daemon` imports from the library (`crate::x`).
fn imports_of(dir: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        for line in code(&f) {
            for part in line.split("crate::").skip(1) {
                let m: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                out.insert(m);
            }
        }
    }
    out
}

/// The service runs a tenant's poll through the same job as `poll` and builds its HTTP client,
/// tokens and budgets through the same environment as every command: it reaches into no command's
/// module, and builds no client of its own.
#[test]
fn the_service_polls_through_the_shared_job_and_environment() {
    let src = root().join("src");
    let daemon = imports_of(&src.join("daemon"));
    assert!(daemon.contains("poll_job"), "{daemon:?}");
    assert!(daemon.contains("env"), "{daemon:?}");
    for command in [
        "app",
        "cli",
        "auth_check",
        "configured_exports",
        "demo",
        "compare",
    ] {
        assert!(
            !daemon.contains(command),
            "daemon imports {command}: {daemon:?}"
        );
    }
    let mut files = Vec::new();
    rust_files(&src.join("daemon"), &mut files);
    for f in files {
        let code = code(&f).join("\n");
        assert!(
            !code.contains("http::client(") && !code.contains("TokenProvider::new("),
            "{} builds its own HTTP client or tokens instead of using env::Environment",
            f.display()
        );
    }
}

/// A module is named for what it holds, not for the process that runs it: no `app.rs`, and no
/// `process.rs` or `runner.rs` of the same kind.
#[test]
fn no_module_is_named_after_a_process() {
    let src = root().join("src");
    for name in ["app", "process", "runner"] {
        assert!(!src.join(format!("{name}.rs")).exists(), "src/{name}.rs");
        assert!(!src.join(name).exists(), "src/{name}/");
    }
}

/// The tests that may name a schedule firing more than once a minute, each with its reason. Every
/// other test fires the service's ticks by hand (`InProcess`, `Driver::manual`), so none waits
/// for the wall clock to reach a cron time: such waits made the suite slow and flaky.
const FAST_SCHEDULES_ALLOWED: &[(&str, &str)] = &[
    // The one test of the real binary's own cron (tokio-cron-scheduler fires it, and sd_notify
    // reports the poll): every second, so its tick is at most a second away.
    ("service.rs", "run_notifies_systemd_and_stops_on_sigterm"),
    // Fired by hand; the schedule only puts the poll's deadline (its next tick) a second away.
    (
        "service.rs",
        "a_wedged_poll_starves_the_watchdog_and_overlapping_ticks_are_skipped",
    ),
    // Fired by hand; the schedule puts the deadlines of the polls waiting for a slot under 2 s
    // away.
    (
        "hostile.rs",
        "a_poll_with_no_free_slot_by_its_deadline_is_a_failed_run",
    ),
    // A one-off poll waits for no tick: its deadline is the schedule's next firing, under a
    // second away.
    (
        "budget.rs",
        "a_poll_stops_at_its_deadline_and_the_next_continues",
    ),
];

/// Whether `text` is a cron expression with a seconds field (six or seven fields) that fires more
/// than once a minute: its seconds field is a range, a step, a list or `*`.
fn fires_within_seconds(text: &str) -> bool {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let cron_like = (6..=7).contains(&fields.len())
        && fields.iter().any(|f| f.contains('*'))
        && fields.iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || "*/,-?#".contains(c))
        });
    cron_like && fields[0].contains(['*', '/', ',', '-'])
}

/// The name of the function a line of a test file belongs to, if the line starts one.
fn fn_name(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let rest = ["pub(crate) ", "pub "]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .unwrap_or(rest);
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let name = rest.strip_prefix("fn ")?;
    name.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
}

/// Every (file, function) of `tests/it` but this file that names a schedule firing within
/// seconds, with the schedule.
fn fast_schedules() -> Vec<(String, String, String)> {
    let dir = root().join("tests/it");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut found = Vec::new();
    for f in files {
        let file = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        if file == "layout.rs" {
            continue;
        }
        let mut current = String::new();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if let Some(name) = fn_name(line) {
                current = name.to_owned();
            }
            // Every quoted text of the line, escaped quotes included.
            for quoted in line.split('"').skip(1).step_by(2) {
                let quoted = quoted.trim_end_matches('\\');
                if fires_within_seconds(quoted) {
                    found.push((file.clone(), current.clone(), quoted.to_owned()));
                }
            }
        }
    }
    found
}

/// No test waits for a wall-clock cron tick: a schedule that fires within seconds appears only in
/// the tests [`FAST_SCHEDULES_ALLOWED`] names, and each of those still needs it.
#[test]
fn no_test_waits_for_a_wall_clock_tick() {
    for (cron, fast) in [
        ("* * * * * *", true),
        ("*/4 * * * * *", true),
        ("0,30 * * * * *", true),
        ("0 */5 * * * *", false),
        ("0 0 * * * *", false),
        ("30 0 6 * * *", false),
        ("*/5 * * * *", false),
    ] {
        assert_eq!(fires_within_seconds(cron), fast, "{cron}");
    }
    let found = fast_schedules();
    for (file, function, cron) in &found {
        assert!(
            FAST_SCHEDULES_ALLOWED.contains(&(file.as_str(), function.as_str())),
            "tests/it/{file}: {function} sets the schedule {cron:?}, which fires within seconds: \
             fire its ticks by hand (InProcess::tick, Remote::fire) on a schedule of once a \
             minute or less, or add it to FAST_SCHEDULES_ALLOWED with the reason"
        );
    }
    for (file, function) in FAST_SCHEDULES_ALLOWED {
        assert!(
            found.iter().any(|(f, n, _)| f == file && n == function),
            "{file}: {function} no longer needs a fast schedule: take it off \
             FAST_SCHEDULES_ALLOWED"
        );
    }
}

/// The test doubles are built for tests only: behind `cfg(test)` or the `test-support` feature,
/// which no default build turns on, so a release binary has none of them.
#[test]
fn test_doubles_are_not_in_a_release_build() {
    let gate = "#[cfg(any(test, feature = \"test-support\"))]";
    let source = std::fs::read_to_string(root().join("src/source/mod.rs")).unwrap();
    assert!(
        source.contains(&format!("{gate}\npub mod fake;")),
        "source::fake is not gated"
    );
    let daemon = std::fs::read_to_string(root().join("src/daemon/mod.rs")).unwrap();
    assert!(
        daemon.contains(&format!("{gate}\npub struct Remote")),
        "daemon::Remote is not gated"
    );
    assert!(
        daemon.contains(&format!(
            "{gate}\nimpl Driver {{\n    /// A driver for a test"
        )),
        "Driver::manual is not gated"
    );
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let features = manifest["features"].as_table().unwrap();
    let default = features.get("default").and_then(|d| d.as_array());
    assert!(
        default.is_none_or(|d| !d.iter().any(|f| f.as_str() == Some("test-support"))),
        "test-support is a default feature"
    );
}

/// The library exists for the binary (`main.rs`, `cli/`) and the tests: a module or item is `pub`
/// only when one of them uses it from outside its module tree, everything else is `pub(crate)` or
/// private, so the public surface names the product's parts. A new public module, or a surface
/// that grows past the ceiling, is then a decision rather than a default.
#[test]
fn the_public_surface_is_what_the_binary_and_tests_use() {
    const PUBLIC_MODULES: &[&str] = &[
        "alert",
        "auth",
        "auth_check",
        "budget",
        "compare",
        "config",
        "configured_exports",
        "daemon",
        "demo",
        "error",
        "export",
        "health",
        "http",
        "import",
        "poll",
        "poll_job",
        "signal",
        "source",
        "store",
        "words",
    ];
    const PUB_LINES_CEILING: usize = 640;

    // Every plain `pub` line of lib.rs: a module's name, anything else (`pub use`, `pub fn`) whole.
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let exposed: Vec<&str> = lib
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("pub "))
        .map(|l| {
            l.strip_prefix("pub mod ")
                .and_then(|m| m.strip_suffix(';'))
                .unwrap_or(l)
        })
        .collect();
    let unlisted: Vec<&&str> = exposed
        .iter()
        .filter(|m| !PUBLIC_MODULES.contains(m))
        .collect();
    assert!(
        unlisted.is_empty(),
        "src/lib.rs exposes {unlisted:?}: make it `pub(crate)` unless the binary or tests/it use \
         it, and if they do, add it to PUBLIC_MODULES here"
    );
    let gone: Vec<&&str> = PUBLIC_MODULES
        .iter()
        .filter(|m| !exposed.contains(m))
        .collect();
    assert!(
        gone.is_empty(),
        "PUBLIC_MODULES lists {gone:?}, which src/lib.rs no longer exposes: remove them here"
    );

    // Plain `pub` declarations anywhere in src/, tests included, as
    // `grep -rn '^\s*pub ' src | grep -v 'pub('` counts them.
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut count = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        count += text
            .lines()
            .filter(|l| l.trim_start().starts_with("pub ") && !l.contains("pub("))
            .count();
    }
    assert!(
        count <= PUB_LINES_CEILING,
        "src/ declares {count} plain `pub` items, more than PUB_LINES_CEILING \
         ({PUB_LINES_CEILING}): make the new ones `pub(crate)` or private unless the binary or \
         tests/it use them from outside their module, or raise the ceiling consciously"
    );
}
