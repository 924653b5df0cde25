//! `[mail]` and the exports' `mail_to`: the server's URL and TLS, the sender, the login, and the
//! recipients, each error naming its key.

use std::net::IpAddr;
use std::path::Path;

use lettre::message::Mailbox;
use url::Url;

use super::At;
use super::tenant::secret_source;
use crate::config::SecretSource;
use crate::config::error::ConfigError;
use crate::config::mail::{MailConfig, MailLogin, MailTls};
use crate::config::raw::{RawExport, RawMail};

const SMTP_FIX: &str = "write smtp = \"smtp://mail.example.com:587\" (STARTTLS) or \"smtps://mail.example.com:465\" (TLS)";

/// `[mail]`: `None` when the section is absent.
pub(super) fn mail(m: &RawMail, base: &Path) -> Result<Option<MailConfig>, ConfigError> {
    if *m == RawMail::default() {
        return Ok(None);
    }
    let at = At("mail");
    let smtp = at.required("smtp", &m.smtp, SMTP_FIX)?;
    let server = Url::parse(smtp.trim())
        .map_err(|e| at.error("smtp", format!("{smtp:?} is not a URL ({e})"), SMTP_FIX))?;
    let implicit = match server.scheme() {
        "smtps" => true,
        "smtp" => false,
        other => {
            return Err(at.error(
                "smtp",
                format!("the scheme {other}:// is not a mail server's"),
                SMTP_FIX,
            ));
        }
    };
    if !server.username().is_empty() || server.password().is_some() {
        // Not echoed: the URL holds a password.
        return Err(at.error(
            "smtp",
            "holds a user name or password (the URL is not shown)",
            "remove user:password@ from the URL; set username here and the password with password_env or password_file (or the systemd credential mail_password)",
        ));
    }
    let host = server
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| at.error("smtp", format!("{smtp:?} names no host"), SMTP_FIX))?
        .to_owned();
    if !matches!(server.path(), "" | "/") || server.query().is_some() || server.fragment().is_some()
    {
        return Err(at.error(
            "smtp",
            format!("{smtp:?} has a path or query; a mail server is only scheme://host:port"),
            SMTP_FIX,
        ));
    }
    let port = server.port().unwrap_or(if implicit { 465 } else { 587 });
    let tls = if implicit {
        MailTls::Implicit
    } else if loopback(&host) {
        MailTls::None
    } else {
        MailTls::StartTls
    };
    let from = at.required(
        "from",
        &m.from,
        "give the sender, e.g. from = \"mde-alerts <mde-alerts@example.com>\"",
    )?;
    let from = address(&at, "from", from)?;
    let login = match &m.username {
        Some(u) if !u.trim().is_empty() => {
            let password = secret_source(
                &at,
                base,
                "password",
                (&m.password_env, &m.password_file),
                false,
            )?
            .unwrap_or(SecretSource::Credential {
                name: "mail_password".into(),
                key: at.key("password_env"),
            });
            Some(MailLogin {
                username: u.trim().to_owned(),
                password,
            })
        }
        Some(_) => {
            return Err(at.error(
                "username",
                "is empty",
                "remove it, or give the login's user name",
            ));
        }
        None if m.password_env.is_some() || m.password_file.is_some() => {
            let k = if m.password_env.is_some() {
                "password_env"
            } else {
                "password_file"
            };
            return Err(at.error(
                k,
                "is set without username",
                "add username = \"…\" (the login's user name), or remove the password",
            ));
        }
        None => None,
    };
    let mut server = server;
    server.set_path("");
    Ok(Some(MailConfig {
        server,
        host,
        port,
        tls,
        from,
        login,
    }))
}

/// An export's `mail_to`: empty when absent; needs `[mail]`.
pub(super) fn mail_to(
    at: &At<'_>,
    x: &RawExport,
    mail: Option<&MailConfig>,
) -> Result<Vec<Mailbox>, ConfigError> {
    let Some(to) = &x.mail_to else {
        return Ok(Vec::new());
    };
    if mail.is_none() {
        return Err(at.error(
            "mail_to",
            "is set, but there is no [mail] section to send through",
            "add [mail] with smtp = \"smtp://host:587\" and from = \"…\" (config.example.toml), or remove mail_to",
        ));
    }
    if to.is_empty() {
        return Err(at.error(
            "mail_to",
            "is empty",
            "list the recipients, e.g. mail_to = [\"soc@example.com\"], or remove mail_to",
        ));
    }
    to.iter()
        .enumerate()
        .map(|(i, a)| address(at, &format!("mail_to[{i}]"), a))
        .collect()
}

fn address(at: &At<'_>, k: &str, text: &str) -> Result<Mailbox, ConfigError> {
    text.trim().parse::<Mailbox>().map_err(|e| {
        at.error(
            k,
            format!("{text:?} is not a mail address ({e})"),
            "write user@example.com, or \"Name <user@example.com>\"",
        )
    })
}

/// Whether the mail never leaves the host: `localhost` or a loopback address. `smtp://` URLs
/// are not special to the `url` crate, so an IP address arrives as text.
fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(smtp: &str) -> RawMail {
        RawMail {
            smtp: Some(smtp.into()),
            from: Some("mde-alerts <alerts@example.com>".into()),
            ..RawMail::default()
        }
    }

    fn err(m: &RawMail) -> ConfigError {
        mail(m, Path::new(".")).unwrap_err()
    }

    #[test]
    fn the_scheme_and_host_decide_tls_and_port() {
        let m = mail(&raw("smtp://mail.example.com"), Path::new("."))
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.tls, m.port, m.host.as_str()),
            (MailTls::StartTls, 587, "mail.example.com")
        );
        let m = mail(&raw("smtps://mail.example.com"), Path::new("."))
            .unwrap()
            .unwrap();
        assert_eq!((m.tls, m.port), (MailTls::Implicit, 465));
        let m = mail(&raw("smtp://127.0.0.1:2525"), Path::new("."))
            .unwrap()
            .unwrap();
        assert_eq!((m.tls, m.port), (MailTls::None, 2525));
        let m = mail(&raw("smtp://[::1]:25"), Path::new("."))
            .unwrap()
            .unwrap();
        assert_eq!(m.tls, MailTls::None);
        assert_eq!(mail(&RawMail::default(), Path::new(".")).unwrap(), None);
    }

    #[test]
    fn a_bad_server_url_names_mail_smtp() {
        for bad in [
            "mail.example.com",
            "https://mail.example.com",
            "smtp://",
            "smtp://h:25/x",
        ] {
            let e = err(&raw(bad));
            assert_eq!(e.key, "mail.smtp", "{bad}: {e}");
            assert!(e.fix.contains("smtp://"), "{e:?}");
        }
        let e = err(&raw("smtp://user:hunter2@mail.example.com"));
        assert_eq!(e.key, "mail.smtp");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn from_is_required_and_must_be_an_address() {
        let mut m = raw("smtp://localhost:25");
        m.from = None;
        assert_eq!(err(&m).key, "mail.from");
        m.from = Some("not an address".into());
        let e = err(&m);
        assert_eq!(e.key, "mail.from");
        assert!(e.fix.contains("user@example.com"), "{e:?}");
    }

    #[test]
    fn a_password_needs_a_username_and_defaults_to_the_credential() {
        let mut m = raw("smtps://mail.example.com");
        m.password_env = Some("MAIL_PW".into());
        assert_eq!(err(&m).key, "mail.password_env");
        m.username = Some("alerts@example.com".into());
        let c = mail(&m, Path::new(".")).unwrap().unwrap();
        assert!(
            matches!(c.login.unwrap().password, SecretSource::Env { ref var, .. } if var == "MAIL_PW")
        );
        m.password_env = None;
        let c = mail(&m, Path::new(".")).unwrap().unwrap();
        assert!(
            matches!(c.login.unwrap().password, SecretSource::Credential { ref name, .. } if name == "mail_password")
        );
    }

    #[test]
    fn mail_to_needs_mail_and_valid_addresses() {
        let at = At("exports[0]");
        let x = RawExport {
            mail_to: Some(vec!["soc@example.com".into(), "nope".into()]),
            ..RawExport::default()
        };
        let e = mail_to(&at, &x, None).unwrap_err();
        assert_eq!(e.key, "exports[0].mail_to");
        assert!(e.fix.contains("[mail]"), "{e:?}");
        let m = mail(&raw("smtp://localhost:25"), Path::new("."))
            .unwrap()
            .unwrap();
        let e = mail_to(&at, &x, Some(&m)).unwrap_err();
        assert_eq!(e.key, "exports[0].mail_to[1]");
        let empty = RawExport {
            mail_to: Some(vec![]),
            ..RawExport::default()
        };
        assert_eq!(
            mail_to(&at, &empty, Some(&m)).unwrap_err().key,
            "exports[0].mail_to"
        );
    }
}
