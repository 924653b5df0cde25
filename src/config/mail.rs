//! `[mail]`: the SMTP server exports with `mail_to` are mailed through, as validated. The
//! password is a [`SecretSource`], read only when a mail is sent, like every other secret.

use std::fmt;

use lettre::message::Mailbox;
use url::Url;

use super::SecretSource;

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MailTls {
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
    /// `smtp://` to another host: the server must offer STARTTLS, or nothing is sent.
    StartTls,
    /// `smtp://` to loopback: plain SMTP, the mail never leaves the host (a local relay, a test
    /// server); a local relay's self-signed certificate would otherwise refuse every mail.
    None,
}

/// `[mail]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MailConfig {
    /// `smtp://host:port` or `smtps://host:port`, without user info: what errors name.
    pub(crate) server: Url,
    /// The host to connect to.
    pub(crate) host: String,
    /// The port (default 587 for `smtp://`, 465 for `smtps://`).
    pub(crate) port: u16,
    /// TLS, from the scheme and the host.
    pub(crate) tls: MailTls,
    /// The sender (`From:` and the envelope).
    pub(crate) from: Mailbox,
    /// The login, when the server asks for one.
    pub(crate) login: Option<MailLogin>,
}

/// A user name and where its password comes from (never the password: it is read when sending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailLogin {
    /// The user name.
    pub(crate) username: String,
    /// The password's source (`password_env`, `password_file`, or the systemd credential
    /// `mail_password`).
    pub(crate) password: SecretSource,
}

impl fmt::Display for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = match self.tls {
            MailTls::Implicit => "TLS",
            MailTls::StartTls => "STARTTLS required",
            MailTls::None => "plain SMTP on loopback",
        };
        write!(f, "{} ({tls}), from {}", self.server, self.from)?;
        if let Some(l) = &self.login {
            write!(f, ", user {} (password from {})", l.username, l.password)?;
        }
        Ok(())
    }
}
