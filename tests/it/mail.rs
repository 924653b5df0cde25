//! Exports mailed through a real SMTP server (`support::smtp`): a report as an HTML body, a CSV
//! as an attachment holding its rows, and a server that is down or refuses: the files are written
//! and the command fails naming the server and its answer; the next run sends the pending files,
//! as written, before its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::smtp::{SmtpServer, dead_url};
use crate::support::*;
use mailparse::{MailHeaderMap, ParsedMail};
use mde_alerts::config::ExportFormat;
use mde_alerts::config::raw::{RawExport, RawMail};
use mde_alerts::daemon::{self, Driver, Event, JobKey};
use mde_alerts::store::Store;
use mde_sim::Hazards;

const ALERTS: usize = 12;

fn mail_section(smtp: &str) -> RawMail {
    RawMail {
        smtp: Some(smtp.into()),
        from: Some("mde-alerts <alerts@example.com>".into()),
        ..RawMail::default()
    }
}

fn mailed(name: &str, format: ExportFormat, to: &[&str]) -> RawExport {
    RawExport {
        mail_to: Some(to.iter().map(|s| (*s).to_owned()).collect()),
        ..config::export(name, format, "out")
    }
}

/// A polled store of `ALERTS` alerts and a config mailing `export` through `smtp`.
async fn env_mailing(smtp: &str, export: RawExport) -> Env {
    let env = Env::new(sim_config(ALERTS, 77, Hazards::default()), Opts::default()).await;
    let out = run(&env, &["poll", "--no-export"]).await;
    assert!(out.status.success(), "{}", text(&out));
    env.edit_config(|c| {
        c.mail = mail_section(smtp);
        c.exports = vec![export];
    });
    env
}

/// The export's timestamped files (not `-latest`, not the manifest).
fn timestamped(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            !f.contains("-latest") && f.ends_with(&format!(".{ext}"))
        })
        .collect();
    v.sort();
    v
}

fn pending(env: &Env) -> i64 {
    Store::open_read_only(&env.store_path())
        .unwrap()
        .pending_mail_count()
        .unwrap()
}

/// The attachments of a mail: (file name, decoded bytes).
fn attachments(m: &ParsedMail<'_>) -> Vec<(String, Vec<u8>)> {
    m.subparts
        .iter()
        .filter(|p| {
            p.get_content_disposition().disposition == mailparse::DispositionType::Attachment
        })
        .map(|p| {
            let name = p.get_content_disposition().params["filename"].clone();
            (name, p.get_body_raw().unwrap())
        })
        .collect()
}

fn csv_rows(bytes: &[u8]) -> Vec<csv::StringRecord> {
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    csv::Reader::from_reader(body)
        .records()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_mailed_as_html_with_a_plain_text_part() {
    let server = SmtpServer::start();
    let env = env_mailing(
        &server.url(),
        mailed("nightly", ExportFormat::Report, &["SOC <soc@example.com>"]),
    )
    .await;
    let out = run(&env, &["export", "--name", "nightly"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let mails = server.mails();
    assert_eq!(mails.len(), 1, "{}", text(&out));
    assert_eq!(mails[0].to, ["soc@example.com"]);
    let m = mailparse::parse_mail(&mails[0].data).unwrap();
    let h = &m.headers;
    assert_eq!(
        h.get_first_value("From").unwrap(),
        "mde-alerts <alerts@example.com>"
    );
    assert!(h.get_first_value("To").unwrap().contains("soc@example.com"));
    let html_file = &timestamped(&env.path().join("out"), "html")[0];
    let stem = html_file
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        h.get_first_value("Subject").unwrap(),
        format!("mde-alerts report: {stem}")
    );
    let date = mailparse::dateparse(&h.get_first_value("Date").unwrap()).unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - date).abs() < 300,
        "{date}"
    );
    assert_eq!(m.ctype.mimetype, "multipart/alternative");
    let types: Vec<&str> = m
        .subparts
        .iter()
        .map(|p| p.ctype.mimetype.as_str())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    // A text part's lines end in CRLF on the wire (RFC 5322), whatever the file's.
    let html = m.subparts[1].get_body().unwrap().replace("\r\n", "\n");
    assert!(
        html == std::fs::read_to_string(html_file).unwrap(),
        "the page as written"
    );
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "no script in a mailed page"
    );
    // Outlook desktop draws no inline SVG: the charts are HTML.
    assert!(
        !html.to_ascii_lowercase().contains("<svg"),
        "no SVG in a mailed page"
    );
    let plain = m.subparts[0].get_body().unwrap().replace("\r\n", "\n");
    assert!(
        plain == std::fs::read_to_string(html_file.with_extension("md")).unwrap(),
        "the Markdown twin is the plain-text part"
    );
    if let Some(keep) = std::env::var_os("MDE_ALERTS_TEST_MAILED_HTML") {
        // For looking at the mailed page in a browser.
        std::fs::write(keep, &html).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_export_is_mailed_as_an_attachment_holding_its_rows() {
    let server = SmtpServer::start();
    let env = env_mailing(
        &server.url(),
        mailed(
            "alerts",
            ExportFormat::Csv,
            &["soc@example.com", "lead@example.com"],
        ),
    )
    .await;
    let out = run(&env, &["export", "--name", "alerts"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["soc@example.com", "lead@example.com"]);
    let m = mailparse::parse_mail(&mails[0].data).unwrap();
    assert_eq!(m.ctype.mimetype, "multipart/mixed");
    assert_eq!(m.subparts[0].ctype.mimetype, "text/plain");
    let note = m.subparts[0].get_body().unwrap();
    assert!(note.contains("alerts"), "{note}");
    let file = &timestamped(&env.path().join("out"), "csv")[0];
    let att = attachments(&m);
    assert_eq!(att.len(), 1);
    assert_eq!(att[0].0, file.file_name().unwrap().to_string_lossy());
    assert_eq!(
        att[0].1,
        std::fs::read(file).unwrap(),
        "the file, byte for byte"
    );
    let rows = csv_rows(&att[0].1);
    assert_eq!(rows.len(), ALERTS, "every alert's row");
    let stored = stored(&env.store_path());
    assert!(
        rows.iter().all(|r| stored.contains_key(&r[0])),
        "rows of stored alerts"
    );
    assert_eq!(pending(&env), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_costs_no_file_and_the_next_run_sends_it() {
    let down = dead_url();
    let env = env_mailing(
        &down,
        mailed("alerts", ExportFormat::Csv, &["soc@example.com"]),
    )
    .await;
    let out = run(&env, &["export", "--name", "alerts"]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("mail to {down} failed")), "{said}");
    assert!(said.contains("fix:"), "{said}");
    let dir = env.path().join("out");
    let first = timestamped(&dir, "csv");
    assert_eq!(first.len(), 1, "the file is written");
    assert!(dir.join("alerts-latest.csv").is_file());
    assert_eq!(pending(&env), 1);

    let server = SmtpServer::start();
    env.edit_config(|c| c.mail = mail_section(&server.url()));
    let out = run(&env, &["export", "--name", "alerts"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let mails = server.mails();
    assert_eq!(mails.len(), 2, "the pending mail, then this run's");
    let sent_first = attachments(&mailparse::parse_mail(&mails[0].data).unwrap());
    assert_eq!(
        sent_first[0].0,
        first[0].file_name().unwrap().to_string_lossy()
    );
    assert_eq!(sent_first[0].1, std::fs::read(&first[0]).unwrap());
    assert_eq!(
        timestamped(&dir, "csv").len(),
        2,
        "one file per run: the retry wrote none"
    );
    assert_eq!(pending(&env), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_mail_server_fails_the_command_with_its_answer() {
    let server = SmtpServer::start();
    server.refuse(true);
    let env = env_mailing(
        &server.url(),
        mailed("alerts", ExportFormat::Csv, &["soc@example.com"]),
    )
    .await;
    let out = run(&env, &["export", "--name", "alerts"]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "mail to {} failed: 550 5.7.1 relay denied",
            server.url()
        )),
        "{said}"
    );
    assert!(said.contains("relays for mail.from"), "the fix: {said}");
    assert_eq!(timestamped(&env.path().join("out"), "csv").len(), 1);
    assert!(server.mails().is_empty());
    assert_eq!(pending(&env), 1);
}

/// Under `run`, a scheduled export whose mail is refused is written; when the server takes mail
/// again, the export's next run sends the pending file as written, then its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mails_a_scheduled_export_and_retries_a_refused_mail_at_its_next_run() {
    let server = SmtpServer::start();
    server.refuse(true);
    let cron = "0 0 6 * * *";
    let env = env_mailing(
        &server.url(),
        RawExport {
            schedule: Some(cron.into()),
            ..mailed("daily", ExportFormat::Csv, &["soc@example.com"])
        },
    )
    .await;
    let config = env.config();
    let schedule = mde_alerts::config::parse_cron(cron).unwrap();
    let (driver, mut remote) = Driver::manual();
    let path = env.config_path.clone();
    let task = tokio::spawn(async move { daemon::serve(&path, config, driver).await });
    let mut export_once = async || {
        remote.fire(&schedule, 1);
        loop {
            let e = tokio::time::timeout(Duration::from_secs(20), remote.events.recv())
                .await
                .expect("the export finishes")
                .expect("the loop runs");
            if let Event::Finished {
                key: JobKey::Export(_),
                ok,
            } = e
            {
                return ok;
            }
        }
    };
    assert!(!export_once().await, "a refused mail fails the job");
    let dir = env.path().join("out");
    let first = timestamped(&dir, "csv");
    assert_eq!(first.len(), 1, "written though not mailed");
    assert_eq!(pending(&env), 1);
    server.refuse(false);
    assert!(export_once().await);
    let mails = server.mails();
    assert_eq!(mails.len(), 2);
    let retried = attachments(&mailparse::parse_mail(&mails[0].data).unwrap());
    assert_eq!(
        retried[0].1,
        std::fs::read(&first[0]).unwrap(),
        "the pending file as written"
    );
    assert_eq!(timestamped(&dir, "csv").len(), 2, "one file per run");
    assert_eq!(pending(&env), 0);
    remote.control.send(daemon::Control::Stop).unwrap();
    task.await.unwrap().unwrap();
}

/// A wrong `[mail]` or `mail_to` is a configuration error (exit 78) naming its key and the fix,
/// and the URL's password is never echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mail_settings_exit_78_naming_the_key() {
    let env = Env::new(sim_config(1, 3, Hazards::default()), Opts::default()).await;
    let base = env.raw_config();
    type Change = Box<dyn Fn(&mut mde_alerts::config::raw::RawConfig)>;
    let cases: [(Change, &str); 5] = [
        (
            Box::new(|c| c.mail = mail_section("https://mail.example.com")),
            "mail.smtp",
        ),
        (
            Box::new(|c| c.mail = mail_section("smtp://user:Hunter2pw@mail.example.com")),
            "mail.smtp",
        ),
        (
            Box::new(|c| {
                c.mail = mail_section("smtp://mail.example.com");
                c.mail.from = None;
            }),
            "mail.from",
        ),
        (
            Box::new(|c| c.exports = vec![mailed("a", ExportFormat::Csv, &["soc@example.com"])]),
            "exports[0].mail_to",
        ),
        (
            Box::new(|c| {
                c.mail = mail_section("smtp://mail.example.com");
                c.exports = vec![mailed(
                    "a",
                    ExportFormat::Csv,
                    &["soc@example.com", "no at"],
                )];
            }),
            "exports[0].mail_to[1]",
        ),
    ];
    for (change, key) in cases {
        let mut c = base.clone();
        change(&mut c);
        env.write_config(&c);
        let out = run(&env, &["config", "check"]).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(78), "{key}: {said}");
        assert!(said.contains(key), "{key}: {said}");
        assert!(said.contains("fix:"), "{key}: {said}");
        assert!(!said.contains("Hunter2pw"), "{said}");
    }
}
