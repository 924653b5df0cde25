//! Mailing written exports to their `mail_to` (`[mail]`): a report as an HTML body with its
//! Markdown twin as the plain-text alternative, any other format as attachments with a short
//! text body.
//!
//! A mail follows its files and never decides them: the files are written first, and a mail the
//! server does not take (down, refusing) is recorded in the store (`mail_pending`) with the
//! files' paths. The next run of that export sends those files, exactly as written, before its
//! own: an outage costs a late mail, never a lost file or a second export. A pending mail whose
//! files retention has since removed, or that failed [`MAX_ATTEMPTS`] times, is dropped with an
//! error in the log, so a mail the server will never take (too large) does not grow a queue.
//!
//! Sending happens in three steps so that the service holds the store only to read and record,
//! never across a network round trip: [`Outbox::collect`] (store), [`Outbox::send`] (network),
//! [`Sent::record`] (store). [`mail_export`] does all three for a command.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{SmtpTransport, Transport};
use secrecy::ExposeSecret;

use super::Written;
use crate::config::{ConfigError, ExportConfig, ExportFormat, MailConfig, MailTls};
use crate::store::{Store, StoreError};

/// Tries of one pending mail before it is dropped.
const MAX_ATTEMPTS: i64 = 10;

/// How long one SMTP command may take: a server that accepts the connection and then stalls
/// must not hold an export's job for lettre's default minute per command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a mail was not sent. The export's files are written either way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The server could not be reached, or did not take the mail.
    #[error("mail to {server} failed: {answer}")]
    Failed {
        /// `smtp://host:port`.
        server: String,
        /// What the server (or the connection) said.
        answer: String,
        /// Whether the server refused (a 5xx answer) rather than being unreachable or busy.
        refused: bool,
    },
    /// The login's password could not be read.
    #[error("mail to {server} failed: {source}")]
    Password {
        /// `smtp://host:port`.
        server: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// A file to mail could not be read.
    #[error("cannot read {path} to mail it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not record or clear a pending mail.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MailError {
    /// What the admin does about it.
    pub(crate) fn hint(&self) -> Option<String> {
        const KEPT: &str = "the files are written; the mail is sent at the export's next run";
        match self {
            MailError::Failed { refused: true, .. } => Some(format!(
                "the server refused: check that it relays for mail.from and to every mail_to address \
                 (and set mail.username and its password if it wants a login); {KEPT}"
            )),
            MailError::Failed { .. } => Some(format!(
                "check that the mail server is up and reachable from this host at mail.smtp (firewall, \
                 proxy, port); {KEPT}"
            )),
            MailError::Password { source, .. } => Some(format!("{}; {KEPT}", source.fix)),
            MailError::Read { .. } => Some("check the export directory's permissions".into()),
            MailError::Store(_) => None,
        }
    }
}

/// One mail: an export's files, new or pending since an earlier run.
#[derive(Debug, Clone)]
struct Mail {
    /// The pending row, for a retry.
    pending: Option<(i64, i64)>,
    files: Vec<PathBuf>,
}

/// The mails of one run of an export: what is pending first, then what this run wrote.
#[derive(Debug)]
struct Outbox {
    export: ExportConfig,
    mails: Vec<Mail>,
}

/// What [`Outbox::send`] did, to record in the store.
#[derive(Debug)]
struct Sent {
    export: String,
    results: Vec<(Mail, Result<(), MailError>)>,
}

impl Outbox {
    /// The mails of export `e` after it wrote `written`: none when it has no `mail_to`.
    fn collect(store: &Store, e: &ExportConfig, written: &[Written]) -> Result<Outbox, StoreError> {
        let mut mails = Vec::new();
        if !e.mail_to.is_empty() {
            for p in store.pending_mails(&e.name)? {
                mails.push(Mail {
                    pending: Some((p.id, p.attempts)),
                    files: p.files,
                });
            }
            let paths: Vec<PathBuf> = written.iter().map(|w| timestamped(&w.path)).collect();
            mails.extend(split(e.format, &paths).into_iter().map(|files| Mail {
                pending: None,
                files,
            }));
        }
        Ok(Outbox {
            export: e.clone(),
            mails,
        })
    }

    /// Whether there is nothing to send.
    fn is_empty(&self) -> bool {
        self.mails.is_empty()
    }

    /// Sends every mail through `mail` (no store access: the service holds no lock meanwhile).
    fn send(self, mail: Option<&MailConfig>) -> Sent {
        let results = self
            .mails
            .into_iter()
            .map(|m| {
                let r = match mail {
                    Some(config) if m.files.iter().all(|f| f.is_file()) => {
                        send_one(config, &self.export, &m.files)
                    }
                    // Validation refuses mail_to without [mail]; a pending mail whose files are
                    // gone is dropped when recorded.
                    _ => Ok(()),
                };
                (m, r)
            })
            .collect();
        Sent {
            export: self.export.name,
            results,
        }
    }
}

impl Sent {
    /// Clears what was sent, records what was not; the first failure is the result.
    fn record(self, store: &Store) -> Result<(), MailError> {
        let mut first = None;
        for (m, r) in self.results {
            let gone = m.files.iter().find(|f| !f.is_file());
            match (m.pending, r) {
                (Some((id, _)), _) if gone.is_some() => {
                    tracing::error!(export = %self.export, file = %gone.map(|f| f.display().to_string()).unwrap_or_default(),
                        "A mail that could not be sent earlier is dropped: its file no longer exists (retention removed it).");
                    store.clear_pending_mail(id)?;
                }
                (Some((id, _)), Ok(())) => {
                    tracing::info!(export = %self.export, files = m.files.len(), "A mail that could not be sent earlier was sent.");
                    store.clear_pending_mail(id)?;
                }
                (None, Ok(())) => {
                    tracing::info!(export = %self.export, files = m.files.len(), "Export mailed.");
                }
                (pending, Err(err)) => {
                    let text = err.to_string();
                    match pending {
                        Some((id, attempts)) if attempts.saturating_add(1) >= MAX_ATTEMPTS => {
                            tracing::error!(export = %self.export, error = %text, attempts = MAX_ATTEMPTS,
                                "A mail failed too often and is dropped; its files are kept in the export directory.");
                            store.clear_pending_mail(id)?;
                        }
                        Some((id, _)) => store.retry_pending_mail(id, &text)?,
                        None => store.add_pending_mail(&self.export, &m.files, &text)?,
                    }
                    tracing::error!(export = %self.export, error = %text, fix = %err.hint().unwrap_or_default(),
                        "Export not mailed; the mail is tried again at the export's next run.");
                    first.get_or_insert(err);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Mails what export `e` wrote (and what is pending of it): for a command, which holds the store.
pub(crate) fn mail_export(
    store: &Store,
    mail: Option<&MailConfig>,
    e: &ExportConfig,
    written: &[Written],
) -> Result<(), MailError> {
    let outbox = Outbox::collect(store, e, written)?;
    if outbox.is_empty() {
        return Ok(());
    }
    outbox.send(mail).record(store)
}

/// [`mail_export`] for the service: the store is locked to read and to record, not while sending.
pub(crate) fn mail_export_shared(
    store: &Mutex<Store>,
    mail: Option<&MailConfig>,
    e: &ExportConfig,
    written: &[Written],
) -> Result<(), MailError> {
    let lock = || store.lock().unwrap_or_else(|p| p.into_inner());
    let outbox = Outbox::collect(&lock(), e, written)?;
    if outbox.is_empty() {
        return Ok(());
    }
    let sent = outbox.send(mail);
    sent.record(&lock())
}

/// The mails of one run's files: a report is one mail per page (its `.html` with the `.md`
/// twin), any other format one mail with every file attached.
fn split(format: ExportFormat, files: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    if files.is_empty() {
        return Vec::new();
    }
    if format != ExportFormat::Report {
        return vec![files.to_vec()];
    }
    files
        .iter()
        .filter(|f| has_ext(f, "html"))
        .map(|html| {
            let mut one = vec![html.clone()];
            let md = html.with_extension("md");
            if files.contains(&md) {
                one.push(md);
            }
            one
        })
        .collect()
}

/// The timestamped file behind a `-latest` one, from its set's manifest: the mail (and a
/// pending mail's record) names the file that never changes, not the one the next run replaces.
/// A path that is not a `-latest` one (a manual run of a `changed` export) is itself.
fn timestamped(path: &Path) -> PathBuf {
    let name = file_name(path);
    let Some((stem, _)) = name.rsplit_once('.') else {
        return path.to_path_buf();
    };
    let Some(set) = stem.strip_suffix("-latest") else {
        return path.to_path_buf();
    };
    let sets = [Some(set), set.strip_suffix("-evidence")];
    for set in sets.into_iter().flatten() {
        let manifest = path.with_file_name(format!("{set}-latest.manifest.json"));
        let Ok(text) = std::fs::read(&manifest) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<super::manifest::Manifest>(&text) else {
            continue;
        };
        if let Some(f) = m.files.iter().find(|f| f.latest == name) {
            return path.with_file_name(&f.file);
        }
    }
    path.to_path_buf()
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(p: &Path) -> Result<Vec<u8>, MailError> {
    std::fs::read(p).map_err(|source| MailError::Read {
        path: p.to_path_buf(),
        source,
    })
}

/// The message for `files` of export `e` (no secret is in any export, nor added here).
fn message(from: &Mailbox, e: &ExportConfig, files: &[PathBuf]) -> Result<Message, MailError> {
    let mut b = Message::builder().from(from.clone()).date_now();
    for to in &e.mail_to {
        b = b.to(to.clone());
    }
    let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    let html = files.iter().find(|f| has_ext(f, "html"));
    let built = match (e.format, html) {
        (ExportFormat::Report, Some(html)) => {
            let page = String::from_utf8_lossy(&read(html)?).into_owned();
            let plain = match files.iter().find(|f| has_ext(f, "md")) {
                Some(md) => String::from_utf8_lossy(&read(md)?).into_owned(),
                None => format!(
                    "The report {} is in the HTML part of this mail.\n",
                    file_name(html)
                ),
            };
            b.subject(format!("mde-alerts report: {}", stem(html)))
                .multipart(MultiPart::alternative_plain_html(plain, page))
        }
        _ => {
            let text = format!(
                "mde-alerts wrote the export {} and attaches {}:\n\n{}\n\nThe same files are in {}.\n",
                e.name,
                if files.len() == 1 { "it" } else { "its files" },
                names
                    .iter()
                    .map(|n| format!("  {n}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                e.dir.display(),
            );
            let mut mixed = MultiPart::mixed().singlepart(SinglePart::plain(text));
            for (f, name) in files.iter().zip(&names) {
                // Base64 whatever the bytes: a file arrives exactly as written (a CSV's BOM, its
                // CRLF or LF line ends), which a text transfer encoding may not keep.
                let body = Body::new_with_encoding(read(f)?, ContentTransferEncoding::Base64)
                    .unwrap_or_else(Body::new);
                mixed = mixed.singlepart(Attachment::new(name.clone()).body(body, content_type(f)));
            }
            b.subject(format!("mde-alerts export: {}", names.join(", ")))
                .multipart(mixed)
        }
    };
    // The builder fails only without From or To, which validation guarantees.
    built.map_err(|err| MailError::Failed {
        server: String::new(),
        answer: format!("the mail could not be built ({err})"),
        refused: false,
    })
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn content_type(p: &Path) -> ContentType {
    let ext = p
        .extension()
        .map(|x| x.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mime = match ext.as_str() {
        "csv" => "text/csv; charset=utf-8",
        "json" => "application/json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "md" => "text/markdown; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    };
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

fn send_one(config: &MailConfig, e: &ExportConfig, files: &[PathBuf]) -> Result<(), MailError> {
    let server = config.server.to_string();
    let msg = message(&config.from, e, files).map_err(|err| match err {
        MailError::Failed {
            answer, refused, ..
        } => MailError::Failed {
            server: server.clone(),
            answer,
            refused,
        },
        other => other,
    })?;
    let failed = |err: lettre::transport::smtp::Error| MailError::Failed {
        server: server.clone(),
        refused: err.is_permanent(),
        answer: answer(&err),
    };
    let tls = match config.tls {
        MailTls::None => Tls::None,
        MailTls::StartTls => {
            Tls::Required(TlsParameters::new(config.host.clone()).map_err(failed)?)
        }
        MailTls::Implicit => Tls::Wrapper(TlsParameters::new(config.host.clone()).map_err(failed)?),
    };
    let mut b = SmtpTransport::builder_dangerous(config.host.clone())
        .port(config.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT))
        .hello_name(ClientId::Domain(hostname()));
    if let Some(login) = &config.login {
        let password = login
            .password
            .read()
            .map_err(|source| MailError::Password {
                server: server.clone(),
                source,
            })?;
        b = b.credentials(Credentials::new(
            login.username.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    b.build().send(&msg).map(drop).map_err(failed)
}

/// The server's answer as it said it (`550 5.7.1 relay denied`), else what failed on the way.
fn answer(err: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let cause = err.source().map(|s| s.to_string()).unwrap_or_default();
    match err.status() {
        Some(code) => format!("{code} {}", cause.trim()),
        None => err.to_string(),
    }
}

/// The name this host greets the server with (`EHLO`): some servers refuse `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_mail_per_page_and_data_one_mail() {
        let f = |s: &str| PathBuf::from(s);
        let files = [
            f("/d/a-1.html"),
            f("/d/a-1.md"),
            f("/d/b-1.html"),
            f("/d/b-1.md"),
        ];
        assert_eq!(
            split(ExportFormat::Report, &files),
            vec![
                vec![f("/d/a-1.html"), f("/d/a-1.md")],
                vec![f("/d/b-1.html"), f("/d/b-1.md")]
            ]
        );
        let csv = [f("/d/a-1.csv"), f("/d/a-evidence-1.csv")];
        assert_eq!(split(ExportFormat::Csv, &csv), vec![csv.to_vec()]);
        assert!(split(ExportFormat::Csv, &[]).is_empty());
    }
}
