//! Import and config: what a user feeds the binary. Saved files in every shape and
//! encoding Windows writes, objects that are neither alert nor response, same-time versions,
//! secret paths that are not files, secrets in TOML errors, and `config check` saying "ok" only
//! when a poll would start.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use mde_alerts::config::ExportFormat;
use mde_alerts::config::raw::{AuthKind, RawConfig, RawTenant};
use mde_alerts::store::Store;
use mde_sim::Hazards;

async fn env() -> Env {
    Env::new(sim_config(12, 9, Hazards::default()), Opts::default()).await
}

/// The simulator's alerts as compact JSON texts.
fn alerts(env: &Env) -> Vec<String> {
    env.sim
        .truth(true)
        .iter()
        .map(|t| t.json.to_string())
        .collect()
}

fn stored_count(env: &Env) -> usize {
    stored(&env.store_path()).len()
}

async fn import(env: &Env, files: &[&Path]) -> std::process::Output {
    let mut args = vec!["import".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(env, &args).await
}

/// An alert with a `value` array of its own was taken for a saved response: the alert
/// vanished and its array's items were counted as invalid, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_an_alert_that_has_a_value_array() {
    let env = env().await;
    let all = alerts(&env);
    // A `value` array added to every alert; serde_json writes keys sorted, so it comes after
    // `id` and `lastUpdateTime`, where a future API field would.
    let with_value: Vec<String> = all
        .iter()
        .map(|a| {
            let mut v: serde_json::Value = serde_json::from_str(a).unwrap();
            v["value"] = serde_json::json!([{ "x": 1 }, 2]);
            v.to_string()
        })
        .collect();
    let file = env.path().join("value.ndjson");
    std::fs::write(&file, with_value.join("\n")).unwrap();
    let out = import(&env, &[&file]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("{} new", all.len())), "{t}");
    assert!(t.contains("0 invalid"), "{t}");
    assert_eq!(stored_count(&env), all.len());
}

/// An object that is neither an alert nor a saved response is an error with its place,
/// not a silent "invalid" count or nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_objects_that_are_neither_alert_nor_response() {
    let env = env().await;
    let all = alerts(&env);
    let file = env.path().join("mixed.ndjson");
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n  {{\"error\":{{\"code\":\"Forbidden\"}}}}\n",
            all[0], all[1]
        ),
    )
    .unwrap();
    let out = import(&env, &[&file]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{}:3:3:", file.display())), "{t}");
    assert!(t.contains("neither an alert"), "{t}");
    assert!(t.contains("in element 3"), "{t}");
    assert!(t.contains("nothing was imported"), "{t}");
    assert_eq!(stored_count(&env), 0);

    // A response whose `value` array is followed by a key a response does not have.
    std::fs::write(&file, format!("{{\"value\":[{}],\n\"id\":\"x\"}}", all[0])).unwrap();
    let out = import(&env, &[&file]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{}:2:1:", file.display())), "{t}");
    assert_eq!(stored_count(&env), 0);
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    std::iter::once(0xFEFF)
        .chain(text.encode_utf16())
        .flat_map(|u: u16| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

/// Windows PowerShell 5.1 writes UTF-8 with a byte-order mark (`Out-File -Encoding
/// utf8`) and UTF-16 (`>`, `Out-File`); both were refused (`found 'ï'`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reads_utf8_with_bom_and_utf16() {
    let env = env().await;
    let all = alerts(&env);
    let (a, b) = all.split_at(6);
    // Pretty-printed with CRLF, as PowerShell's ConvertTo-Json writes it.
    let array = |items: &[String]| {
        let values: Vec<serde_json::Value> = items
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        serde_json::to_string_pretty(&values)
            .unwrap()
            .replace('\n', "\r\n")
    };
    let bom8 = env.path().join("bom8.json");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(array(a).as_bytes());
    std::fs::write(&bom8, bytes).unwrap();
    let le = env.path().join("utf16le.json");
    std::fs::write(&le, utf16(&array(b), false)).unwrap();
    let be = env.path().join("utf16be.ndjson");
    std::fs::write(&be, utf16(&all.join("\r\n"), true)).unwrap();

    let out = import(&env, &[&bom8, &le]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("{} new", all.len())), "{t}");
    // The same alerts from another encoding are the same versions.
    let out = import(&env, &[&be]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("{} unchanged", all.len())), "{t}");
    let d = diff(&stored(&env.store_path()), &env.sim.truth(true));
    assert!(d.is_clean(), "{d:?}");
}

/// A number beyond a double's range failed the whole file; it is kept as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_a_number_beyond_a_double() {
    let env = env().await;
    let all = alerts(&env);
    let huge = all[0].replacen('{', "{\"riskScore\":1e400,\"tiny\":-2E+999,", 1);
    let file = env.path().join("huge.ndjson");
    std::fs::write(&file, format!("{huge}\n{}\n", all[1])).unwrap();
    let out = import(&env, &[&file]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("2 new"), "{t}");
    let store = Store::open(&env.store_path()).unwrap();
    let mut raws = Vec::new();
    store
        .for_each_alert(|_, raw| {
            raws.push(raw.to_owned());
            Ok(())
        })
        .unwrap();
    assert!(
        raws.iter()
            .any(|r| r.contains("\"riskScore\":1e400,\"tiny\":-2E+999")),
        "{raws:?}"
    );
}

/// Errors said "malformed at byte 123456"; they give file:line:column and the element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_errors_give_file_line_column_and_element() {
    let env = env().await;
    let all = alerts(&env);
    let values: Vec<serde_json::Value> = all[..3]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let pretty = serde_json::to_string_pretty(&values).unwrap();
    // Break the third element: a doubled comma after its `id`.
    let id3 = values[2]["id"].as_str().unwrap();
    let needle = format!("\"id\": \"{id3}\",");
    let at = pretty.find(&needle).unwrap() + needle.len();
    let broken = format!("{},{}", &pretty[..at], &pretty[at..]);
    let line = broken[..at].matches('\n').count() + 1;
    let column = at - broken[..at].rfind('\n').unwrap();
    let file = env.path().join("broken.json");
    std::fs::write(&file, &broken).unwrap();
    let out = import(&env, &[&file]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("{}:{line}:{column}:", file.display())),
        "{line}:{column}: {t}"
    );
    assert!(t.contains("in element 3"), "{t}");
    assert!(!t.contains("at byte"), "{t}");
    assert_eq!(stored_count(&env), 0);
}

/// Two versions of one alert with the same `lastUpdateTime` but different content were
/// counted "updated" without a word; the last one read wins, and now says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_time_versions_are_warned_about_and_both_kept() {
    let env = env().await;
    let all = alerts(&env);
    let v: serde_json::Value = serde_json::from_str(&all[0]).unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let time = v["lastUpdateTime"].as_str().unwrap().to_owned();
    let mut other = v.clone();
    other["title"] = "a different title, same lastUpdateTime".into();
    let file = env.path().join("twice.ndjson");
    std::fs::write(&file, format!("{v}\n{other}\n{}\n", all[1])).unwrap();
    let out = import(&env, &[&file]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let warning = t
        .lines()
        .find(|l| l.contains(&id) && l.contains("same lastUpdateTime"))
        .unwrap_or_else(|| panic!("no warning naming {id}: {t}"));
    assert!(warning.contains(&time[..19]), "{warning}");
    assert!(t.contains("warning: 1 times a version replaced"), "{t}");
    let store = Store::open(&env.store_path()).unwrap();
    let revisions: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM alert_revisions WHERE alert_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(revisions, 2, "both versions are in the history");
    let (_, current) = &stored(&env.store_path())[&id];
    assert_eq!(current["title"], "a different title, same lastUpdateTime");
}

/// The GUID config.example.toml ships with.
const PLACEHOLDER: &str = "00000000-0000-0000-0000-000000000000";

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `args`, failing the test if it has not ended within 30 s (a FIFO used to hang it).
async fn run_bounded(env: &Env, args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(30),
        run_with(env, args, |c| {
            c.kill_on_drop(true);
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{args:?} hung"))
}

async fn expect_78(env: &Env, config: &str, args: &[&str], key: &str, says: &str) -> String {
    std::fs::write(&env.config_path, config).unwrap();
    let out = run_bounded(env, args).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{args:?} {config}\n{t}");
    assert!(
        t.contains(key),
        "{args:?}: the error does not name {key}: {t}"
    );
    assert!(t.contains(says), "{args:?}: no {says:?} in: {t}");
    assert!(t.contains("fix:"), "{t}");
    t
}

/// A secret path at a FIFO hung `config check` and `poll`; one at a huge file read it
/// whole. Every file the config points at is refused unless it is a small regular file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_paths_that_are_not_small_regular_files_exit_78() {
    let env = env().await;
    let base = env.raw_config();
    let fifo = env.path().join("fifo");
    mkfifo(&fifo);
    let big = env.path().join("big");
    std::fs::write(&big, "x".repeat(100_000)).unwrap();
    let fifo = fifo.display().to_string();
    let big = big.display().to_string();
    for (path, says) in [(&fifo, "FIFO"), (&big, "larger than 64 KiB")] {
        let config = config::changed(&base, |c| {
            c.tenants[0].client_secret_file = Some(path.clone())
        });
        for args in [&["config", "check"][..], &["poll"]] {
            expect_78(&env, &config, args, "tenants[0].client_secret_file", says).await;
        }
        let config = config::changed(&base, |c| {
            let t = &mut c.tenants[0];
            t.client_secret_file = None;
            t.auth = Some(AuthKind::Certificate);
            t.certificate_file = Some(path.clone());
        });
        let check = &["config", "check"][..];
        expect_78(&env, &config, check, "tenants[0].certificate_file", says).await;
    }
    let config = config::changed(&base, |c| c.http.ca_file = Some(fifo.clone()));
    expect_78(&env, &config, &["config", "check"], "http.ca_file", "FIFO").await;
    // The config file itself, and a systemd credential.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(bin())
            .args(["--config", &fifo, "config", "check"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("a FIFO config hung config check")
    .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("FIFO"), "{}", text(&out));
    let creds = env.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    mkfifo(&creds.join("client_secret"));
    env.write_config(&RawConfig {
        tenants: vec![RawTenant {
            client_secret_file: None,
            ..base.tenants[0].clone()
        }],
        ..base.clone()
    });
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        run_with(&env, &["config", "check"], |c| {
            c.env("CREDENTIALS_DIRECTORY", &creds).kill_on_drop(true);
        }),
    )
    .await
    .expect("a FIFO credential hung config check");
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("FIFO"), "{}", text(&out));
}

/// A TOML syntax error on the `proxy` line printed the line, password included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_errors_do_not_show_the_proxy_password() {
    let env = env().await;
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    for broken in [
        "[http]\nproxy = \"http://svc:Pr0xy-s3cret@127.0.0.1:3128\n",
        "[http]\nproxy = http://svc:Pr0xy-s3cret@127.0.0.1:3128\n",
        "[http]\nproxy = \"http://svc:Pr0xy-s3cret@127.0.0.1:3128\" x\n",
    ] {
        let config = format!("{good}\n{broken}");
        let t = expect_78(&env, &config, &["config", "check"], "(syntax)", "line").await;
        assert!(!t.contains("Pr0xy-s3cret"), "{t}");
        assert!(t.contains("[redacted]"), "{t}");
    }
}

/// `config check` said "ok" for configs that `poll` then refused or Entra rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_fails_where_a_poll_would() {
    let env = env().await;
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    let base = env.raw_config();
    let check = &["config", "check"][..];
    // An export directory that cannot be created (a file is in the way).
    std::fs::write(env.path().join("a-file"), "").unwrap();
    let config = config::changed(&base, |c| {
        c.exports = vec![config::export(
            "alerts",
            ExportFormat::Csv,
            "a-file/exports",
        )];
    });
    for args in [check, &["poll"]] {
        expect_78(
            &env,
            &config,
            args,
            "exports[0].dir",
            "a-file exists and is not a directory",
        )
        .await;
    }
    // A missing export directory is left for the service to make as its own: `config check` is
    // often run with sudo, and a directory it made would be root's.
    let config = config::changed(&base, |c| {
        c.exports = vec![config::export("alerts", ExportFormat::Csv, "later/exports")];
    });
    std::fs::write(&env.config_path, &config).unwrap();
    let out = run_bounded(&env, check).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !env.path().join("later").exists(),
        "config check made a directory"
    );
    // A metrics textfile that cannot be written: a poll would only log it, and Prometheus would
    // see nothing.
    for (textfile, says) in [
        ("no-such-dir/mde.prom", "does not exist"),
        (".", "is not a regular file"),
    ] {
        let config = config::changed(&base, |c| c.metrics.textfile = Some(textfile.into()));
        expect_78(&env, &config, check, "metrics.textfile", says).await;
    }
    // A store in a directory that does not exist.
    let config = config::changed(&base, |c| {
        c.store.path = Some("no-such-dir/alerts.db".into())
    });
    expect_78(&env, &config, check, "store.path", "does not exist").await;
    // The example's placeholders: refused by every command that would sign in with them, before
    // Entra is asked.
    let asked = env.sim.stats().token_requests;
    let config = config::changed(&base, |c| c.tenants[0].tenant_id = Some(PLACEHOLDER.into()));
    for args in [check, &["poll"], &["auth", "check"]] {
        expect_78(&env, &config, args, "tenants[0].tenant_id", "placeholder").await;
    }
    let config = config::changed(&base, |c| c.tenants[0].client_id = Some(PLACEHOLDER.into()));
    for args in [check, &["poll"], &["auth", "check"]] {
        expect_78(&env, &config, args, "tenants[0].client_id", "placeholder").await;
    }
    assert_eq!(env.sim.stats().token_requests, asked, "Entra was not asked");
    // A schedule that never fires, and a tenant_id that is a path.
    let config = config::changed(&base, |c| c.poll.schedule = Some("0 0 0 30 2 *".into()));
    expect_78(&env, &config, check, "poll.schedule", "never fires").await;
    expect_78(&env, &config, &["poll"], "poll.schedule", "never fires").await;
    let config = config::changed(&base, |c| c.tenants[0].tenant_id = Some("../../x".into()));
    expect_78(
        &env,
        &config,
        check,
        "tenants[0].tenant_id",
        "neither a GUID",
    )
    .await;
    expect_78(
        &env,
        &config,
        &["poll"],
        "tenants[0].tenant_id",
        "neither a GUID",
    )
    .await;
    // The Secret ID where the Value belongs: said before Entra says AADSTS7000215.
    std::fs::write(
        env.path().join("secret-id"),
        "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b\n",
    )
    .unwrap();
    let config = config::changed(&base, |c| {
        c.tenants[0].client_secret_file = Some("secret-id".into())
    });
    for args in [check, &["poll"]] {
        let t = expect_78(
            &env,
            &config,
            args,
            "tenants[0].client_secret_file",
            "Secret ID",
        )
        .await;
        assert!(!t.contains("6f1e2d3c"), "{t}");
    }
    // And the good config is still ok.
    std::fs::write(&env.config_path, &good).unwrap();
    let out = run(&env, check).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok:"), "{}", text(&out));
}

/// A CA file whose PEM block holds no certificate reqwest can read stops the poll before any
/// call, naming the file and `[http] ca_file`, with the fix on its own line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_that_tls_cannot_read_names_the_file_and_the_fix() {
    let env = env().await;
    let ca = env.dir.path().join("corporate-ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    env.edit_config(|c| c.http.ca_file = Some(ca.display().to_string()));
    let out = run(&env, &["poll"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let line = t
        .lines()
        .find(|l| l.starts_with("error: cannot set up HTTPS: "))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(line.contains("corporate-ca.pem"), "{line}");
    let fix = t
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .nth(1)
        .unwrap_or_default();
    assert!(fix.starts_with("  fix: ") && fix.contains("[http]"), "{t}");
    assert_eq!(env.sim.stats().token_requests, 0, "no call was made: {t}");
    // `config check` finds it first, as a configuration error.
    let out = run(&env, &["config", "check"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(
        t.contains("http.ca_file") && t.contains("corporate-ca.pem"),
        "{t}"
    );
    assert!(t.contains("  fix: give [http] ca_file"), "{t}");
}

/// A store path that names a directory, or sits in a directory that does not exist, is the
/// config's mistake: `poll` says so with the key and exit code 78, before any call is spent.
#[tokio::test]
async fn a_store_path_that_cannot_be_a_store_is_a_config_error() {
    let env = env().await;
    let dir = env.dir.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    for (path, says) in [
        (dir.clone(), "is not a regular file"),
        (
            env.dir.path().join("missing").join("alerts.db"),
            "does not exist",
        ),
    ] {
        env.edit_config(|c| c.store.path = Some(path.display().to_string()));
        let out = run(&env, &["poll"]).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(78), "{t}");
        assert!(t.contains("store.path") && t.contains(says), "{t}");
        assert!(t.contains("  fix: "), "{t}");
        assert_eq!(env.sim.stats().token_requests, 0, "no call was made: {t}");
    }
}

/// A config others may edit can send the secret anywhere (`login_url`): `config check` says so,
/// with the fix, and is quiet once only its owner may write it.
#[tokio::test]
async fn a_config_others_may_change_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let env = env().await;
    let mode =
        |m| std::fs::set_permissions(&env.config_path, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o666);
    let t = text(&run(&env, &["config", "check"]).await);
    let line = t
        .lines()
        .find(|l| l.starts_with("warning: ") && l.contains("may be changed by every account"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(line.contains("login_url"), "{line}");
    assert!(t.contains("  fix: chmod go-w "), "{t}");
    mode(0o640);
    let t = text(&run(&env, &["config", "check"]).await);
    assert!(!t.contains("may be changed by"), "{t}");
}
