//! The real binary, as an admin runs it: exit codes, messages, files, and no secret anywhere.

use std::path::Path;

use crate::support::*;
use mde_alerts::config::raw::LogFormat;
use mde_alerts::config::{Config, TokenEndpoint, keys};
use mde_alerts::store::Store;
use mde_sim::Hazards;

#[test]
fn example_config_loads_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.tenants[0].name, "contoso");
    let text = std::fs::read_to_string(&path).unwrap();
    for (section, keys) in keys() {
        for k in keys {
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{k} ="))
                    || l.starts_with(&format!("[{k}]"))
                    || l.starts_with(&format!("[[{k}]]"))
            });
            assert!(
                documented,
                "config.example.toml does not document {section}.{k}"
            );
        }
    }
}

async fn config_error(env: &Env, config: &str, key: &str) {
    std::fs::write(&env.config_path, config).unwrap();
    let out = run(env, &["config", "check"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{config}\n{t}");
    assert!(t.contains(key), "the error does not name {key}: {t}");
    assert!(t.contains("fix:"), "no fix in: {t}");
    // The same for a command that would poll.
    let out = run(env, &["poll"]).await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_exit_78_naming_the_key() {
    let env = Env::new(sim_config(10, 1, Hazards::default()), Opts::default()).await;
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    let base = env.raw_config();
    config_error(&env, "[[tenants]\nname = ", "(syntax)").await;
    config_error(
        &env,
        &good.replace("page_size", "pagesize"),
        "poll.pagesize",
    )
    .await;
    config_error(
        &env,
        &good.replace("page_size = 100", "page_size = \"lots\""),
        "poll.page_size",
    )
    .await;
    config_error(
        &env,
        &config::changed(&base, |c| {
            c.tenants[0].client_secret_file = None;
            c.tenants[0].client_secret_env = Some("NO_SUCH_VAR_4711".into());
        }),
        "tenants[0].client_secret_env",
    )
    .await;
    config_error(
        &env,
        &config::changed(&base, |c| {
            c.tenants[0].client_secret_file = Some("missing-file".into())
        }),
        "tenants[0].client_secret_file",
    )
    .await;
    config_error(
        &env,
        &config::changed(&base, |c| {
            c.tenants[0].api_url = Some("http://alerts.example.com".into())
        }),
        "tenants[0].api_url",
    )
    .await;
    config_error(
        &env,
        &good.replace("overlap = \"10m\"", "overlap = \"ten minutes\""),
        "poll.overlap",
    )
    .await;
    // A missing config file is a configuration error too.
    let out = tokio::process::Command::new(bin())
        .args([
            "--config",
            "/nonexistent/mde-alerts.toml",
            "config",
            "check",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out).contains("config.example.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_then_export_writes_files_and_status_reports() {
    let env = Env::new(
        sim_config(300, 2, Hazards::default()),
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    let out = run(&env, &["poll"]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("t1: 300 new"), "{t}");
    let csv = std::fs::read_to_string(env.path().join("exports/alerts-latest.csv")).unwrap();
    assert!(csv.starts_with('\u{feff}'));
    let mut reader = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    assert_eq!(reader.headers().unwrap().get(0), Some("id"));
    let rows: Vec<_> = reader.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 300);
    let title = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "title")
        .unwrap();
    for r in &rows {
        let cell = &r[title];
        assert!(
            !cell.starts_with(['=', '+', '-', '@']),
            "unguarded cell {cell:?}"
        );
    }
    let json: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(env.path().join("exports/alerts-json-latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json.len(), 300);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path().join("exports/alerts-latest.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["rows"], 300);
    use sha2::Digest;
    let sha =
        sha2::Sha256::digest(std::fs::read(env.path().join("exports/alerts-latest.csv")).unwrap());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(manifest["sha256"], hex);

    let nd = env.path().join("one.ndjson");
    let out = run(
        &env,
        &[
            "export",
            "--format",
            "ndjson",
            "--out",
            nd.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&nd).unwrap().lines().count(), 300);

    let out = run(&env, &["status", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s[0]["alerts"], 300);
    assert_eq!(s[0]["last_run"]["outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_shows_the_aadsts_code_and_what_to_do() {
    let env = Env::new(sim_config(10, 3, Hazards::default()), Opts::default()).await;
    std::fs::write(env.path().join("secret"), "not-the-secret\n").unwrap();
    let out = run(&env, &["poll"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("AADSTS7000215"), "{t}");
    assert!(t.contains("Secret ID"), "{t}");
    let out = run(&env, &["status"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unhealthy status exits 1: {}",
        text(&out)
    );
    assert!(text(&out).contains("AADSTS7000215"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reads_every_shape_and_rejects_malformed_files_whole() {
    let env = Env::new(sim_config(30, 4, Hazards::default()), Opts::default()).await;
    let truth = env.sim.truth(true);
    let objs: Vec<String> = truth.iter().map(|t| t.json.to_string()).collect();
    let envelope = format!(
        "{{\"@odata.context\":\"x\",\"value\":[{}]}}",
        objs[..10].join(",")
    );
    let array =
        serde_json::to_string_pretty(&truth[10..20].iter().map(|t| &t.json).collect::<Vec<_>>())
            .unwrap();
    let ndjson = objs[20..].join("\n") + "\n";
    let files = [
        ("a.json", envelope),
        ("b.json", array),
        ("c.ndjson", ndjson),
    ];
    for (name, body) in &files {
        std::fs::write(env.path().join(name), body).unwrap();
    }
    let bad = env.path().join("bad.json");
    std::fs::write(&bad, format!("[{}, {{\"id\": \"x\", ", objs[0])).unwrap();

    let out = run(
        &env,
        &[
            "import",
            bad.to_str().unwrap(),
            env.path().join("a.json").to_str().unwrap(),
        ],
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    // file:line:column of the cut, and the element it is in.
    assert!(
        t.contains(&format!("{}:1:", bad.display())) && t.contains("in element 2"),
        "{t}"
    );
    assert!(t.contains("nothing was imported"), "{t}");
    assert_eq!(
        Store::open(&env.store_path())
            .unwrap()
            .alert_counts()
            .unwrap()
            .len(),
        0
    );

    let paths: Vec<String> = files
        .iter()
        .map(|(n, _)| env.path().join(n).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["import"];
    args.extend(paths.iter().map(String::as_str));
    let out = run(&env, &args).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("30 new"), "{t}");
    // Again: all unchanged, including the pretty-printed ones.
    let out = run(&env, &args).await;
    assert!(text(&out).contains("30 unchanged"), "{}", text(&out));
    let d = diff(&stored(&env.store_path()), &truth);
    assert!(d.is_clean(), "{d:?}");
    // Importing never moves the poll cursor.
    assert_eq!(
        Store::open(&env.store_path())
            .unwrap()
            .cursor("t1")
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_leak() {
    let env = Env::new(
        sim_config(120, 5, Hazards::default()),
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    let secret = mde_sim::DEMO_CLIENT_SECRET;
    let mut outputs = String::new();
    for args in [
        &["poll"][..],
        &["config", "check"],
        &["status", "--json"],
        &["export"],
    ] {
        let out = run_with(&env, args, |c| {
            c.env("RUST_LOG", "trace");
        })
        .await;
        outputs.push_str(&text(&out));
    }
    assert!(
        outputs.contains("TRACE") || outputs.contains("DEBUG"),
        "trace logging was not on"
    );
    let tokens = env.sim.issued_tokens();
    assert!(!tokens.is_empty());
    let mut haystacks = vec![("output".to_owned(), outputs)];
    for entry in walk(env.path()) {
        if entry
            .file_name()
            .is_some_and(|n| n == "secret" || n == "config.toml")
        {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        haystacks.push((
            entry.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (name, hay) in &haystacks {
        assert!(
            !hay.contains(secret),
            "the client secret leaked into {name}"
        );
        for t in &tokens {
            assert!(!hay.contains(t.as_str()), "a token leaked into {name}");
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1_token_endpoint_works_too() {
    let env = Env::new(sim_config(50, 6, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| c.tenants[0].token_endpoint = Some(TokenEndpoint::V1));
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("50 new"));
    assert_eq!(env.sim.stats().tokens_issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_serves_a_config_that_polls() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(bin())
        .args([
            "simulate",
            "--port",
            "0",
            "--alerts",
            "40",
            "--mutate-every",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut snippet = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.starts_with("Ctrl-C") {
            break;
        }
        snippet.push_str(&line);
        snippet.push('\n');
    }
    assert!(
        snippet.contains("api_url = \"http://127.0.0.1:"),
        "{snippet}"
    );
    // Use the printed block as a config, with the secret it names.
    let dir = tempfile::tempdir().unwrap();
    let block = &snippet[snippet.find("[[tenants]]").unwrap()..];
    let secret = block
        .split("MDE_ALERTS_CLIENT_SECRET='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("{block}\n[store]\npath = \"a.db\"\n")).unwrap();
    let out = tokio::process::Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("poll")
        .env("MDE_ALERTS_CLIENT_SECRET", secret)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The printed tenant is `auto`, and the simulator's app may read Graph: it reads alerts_v2,
    // which leaves out the few alerts Graph does not return (tuned, standalone).
    let out = text(&out);
    assert!(out.contains("reads Microsoft Graph"), "{out}");
    let new: u32 = out
        .split(" new,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((36..=40).contains(&new), "{new} of the 40 alerts: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_health_max_age() {
    let env = Env::new(sim_config(20, 7, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| {
        c.log.format = Some(LogFormat::Json);
        c.log.level = Some("info".into());
        c.health.max_age = Some(config::duration("2s"));
    });
    let out = run_with(&env, &["poll"], |c| {
        c.env_remove("RUST_LOG");
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }
    let out = run(&env, &["status"]).await;
    assert!(out.status.success(), "fresh: {}", text(&out));
    // Unhealthy once the last success is older than max_age: asked until then, not slept for.
    let polled = std::time::Instant::now();
    let out = loop {
        let out = run(&env, &["status"]).await;
        if out.status.success() {
            assert!(
                polled.elapsed() < std::time::Duration::from_secs(10),
                "still healthy long after max_age: {}",
                text(&out)
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        break out;
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("max_age"), "{}", text(&out));
}
