//! Certificate sign-in: the app proves itself with a JWT signed by the private key of a certificate
//! uploaded to its registration (a "client assertion").
//!
//! Everything that can be wrong with the files is found when they are loaded — a missing or
//! unreadable file, a PEM that is not a certificate, a certificate without its key, a key that does
//! not belong to the certificate, an expired certificate — and reported as a [`ConfigError`] naming
//! the key, so `config check` and `poll` exit 78 before anything is sent. A certificate expiring
//! within 30 days is logged as a warning on every load.
//!
//! The private key lives only inside `jsonwebtoken`'s [`EncodingKey`]; `Debug` never shows it.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sha2::{Digest, Sha256};
use x509_parser::pem::Pem;

use crate::config::{AssertionAlgorithm, AuthMethod, ConfigError, TenantConfig};

/// Warn this long before the certificate expires.
const EXPIRY_WARNING: chrono::Duration = chrono::Duration::days(30);
/// Lifetime of one assertion (Microsoft recommends 5–10 minutes).
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A loaded certificate credential.
pub(crate) struct Credential {
    key: EncodingKey,
    algorithm: AssertionAlgorithm,
    x5t: String,
    x5t_s256: String,
    /// The certificate's subject, for messages.
    pub(crate) subject: String,
    /// When the certificate expires.
    pub(crate) not_after: DateTime<Utc>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("x5t#S256", &self.x5t_s256)
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

impl Credential {
    /// The same certificate (by its SHA-256 thumbprint) signing the same way. The private key is
    /// bound to the certificate, so it is the same key too.
    pub(crate) fn same_certificate(&self, other: &Credential) -> bool {
        self.x5t_s256 == other.x5t_s256 && self.algorithm == other.algorithm
    }
}

/// Through the config's reader: regular files only, at most 64 KiB (a FIFO would hang).
fn read(key: &str, path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    crate::config::read_key_file(key, path, what)
}

fn pems(key: &str, path: &Path, bytes: &[u8]) -> Result<Vec<Pem>, ConfigError> {
    let blocks: Result<Vec<Pem>, _> = Pem::iter_from_buffer(bytes).collect();
    match blocks {
        Ok(b) if !b.is_empty() => Ok(b),
        _ => Err(ConfigError {
            file: None,
            key: key.to_owned(),
            problem: format!("{} is not a PEM file", path.display()),
            fix: "give a PEM file (text starting with -----BEGIN …-----); convert a .pfx with \
                  `openssl pkcs12 -in app.pfx -nodes -out app.pem`"
                .into(),
        }),
    }
}

fn pem_text(p: &Pem) -> String {
    let b64 = STANDARD.encode(&p.contents);
    let mut s = format!("-----BEGIN {}-----\n", p.label);
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {}-----\n", p.label));
    s
}

impl Credential {
    /// Loads and checks the certificate and key of a `certificate` tenant.
    pub(crate) fn load(tenant: &TenantConfig) -> Result<Credential, ConfigError> {
        let AuthMethod::Certificate {
            certificate_file,
            private_key_file,
            algorithm,
        } = &tenant.auth
        else {
            return Err(ConfigError {
                file: None,
                key: tenant.key("auth"),
                problem: "is not \"certificate\"".into(),
                fix: "set auth = \"certificate\"".into(),
            });
        };
        let cert_key = tenant.key("certificate_file");
        let bytes = read(&cert_key, certificate_file, "certificate file")?;
        let blocks = pems(&cert_key, certificate_file, &bytes)?;
        let cert_pem = blocks.iter().find(|p| p.label == "CERTIFICATE").ok_or_else(|| ConfigError {
            file: None,
            key: cert_key.clone(),
            problem: format!(
                "{} holds no certificate (found {})",
                certificate_file.display(),
                blocks.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(", ")
            ),
            fix: "give the PEM certificate (-----BEGIN CERTIFICATE-----) that was uploaded to the app registration".into(),
        })?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&cert_pem.contents).map_err(|e| ConfigError {
                file: None,
                key: cert_key.clone(),
                problem: format!(
                    "{} holds a certificate that cannot be read: {e}",
                    certificate_file.display()
                ),
                fix: "export the certificate again in PEM".into(),
            })?;
        let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let not_before = DateTime::<Utc>::from_timestamp(cert.validity().not_before.timestamp(), 0)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let subject = cert.subject().to_string();
        let now = Utc::now();
        if not_after <= now {
            return Err(ConfigError {
                file: None,
                key: cert_key,
                problem: format!("the certificate ({subject}) expired on {}", not_after.format("%Y-%m-%d %H:%M UTC")),
                fix: "create a new certificate, upload it to the app registration (Certificates & secrets), and point certificate_file at it".into(),
            });
        }
        if not_before > now {
            return Err(ConfigError {
                file: None,
                key: cert_key,
                problem: format!(
                    "the certificate ({subject}) is not valid before {}",
                    not_before.format("%Y-%m-%d %H:%M UTC")
                ),
                fix: "check this machine's clock, or use a certificate that is valid now".into(),
            });
        }
        if not_after - now < EXPIRY_WARNING {
            tracing::warn!(
                tenant = %tenant.name,
                expires = %not_after.format("%Y-%m-%d"),
                "The sign-in certificate expires in {} days: upload a new one to the app registration and update certificate_file.",
                (not_after - now).num_days()
            );
        }
        let (key_name, key_path, key_blocks) = match private_key_file {
            Some(p) => {
                let k = tenant.key("private_key_file");
                crate::config::warn_if_shared(&k, p);
                let b = read(&k, p, "private key file")?;
                let blocks = pems(&k, p, &b)?;
                (k, p.as_path(), blocks)
            }
            None => (cert_key.clone(), certificate_file.as_path(), blocks.clone()),
        };
        if key_blocks
            .iter()
            .any(|p| p.label == "ENCRYPTED PRIVATE KEY")
        {
            return Err(ConfigError {
                file: None,
                key: key_name,
                problem: format!("the private key in {} is encrypted", key_path.display()),
                fix: "store it unencrypted with mode 0600 (`openssl pkcs8 -in key.pem -nocrypt -out key-plain.pem`), or load it as a systemd credential".into(),
            });
        }
        let key_pem = key_blocks
            .iter()
            .find(|p| p.label == "PRIVATE KEY" || p.label == "RSA PRIVATE KEY")
            .ok_or_else(|| ConfigError {
                file: None,
                key: key_name.clone(),
                problem: format!("{} holds no private key", key_path.display()),
                fix: if private_key_file.is_none() {
                    "set private_key_file to the PEM private key of the certificate, or put the key in the certificate file".into()
                } else {
                    "give the PEM private key (-----BEGIN PRIVATE KEY-----) of the certificate".into()
                },
            })?;
        let key =
            EncodingKey::from_rsa_pem(pem_text(key_pem).as_bytes()).map_err(|e| ConfigError {
                file: None,
                key: key_name.clone(),
                problem: format!(
                    "the private key in {} is not a usable RSA key ({e})",
                    key_path.display()
                ),
                fix: "Entra accepts RSA certificates (2048 bits or more) for client assertions"
                    .into(),
            })?;
        // The key must belong to the certificate: sign a probe and verify it with the
        // certificate's public key.
        let public = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
        let probe = b"mde-alerts key check";
        let matches = jsonwebtoken::crypto::sign(probe, &key, Algorithm::RS256)
            .ok()
            .and_then(|sig| {
                jsonwebtoken::crypto::verify(&sig, probe, &public, Algorithm::RS256).ok()
            })
            .unwrap_or(false);
        if !matches {
            return Err(ConfigError {
                file: None,
                key: key_name,
                problem: format!(
                    "the private key in {} does not belong to the certificate ({subject})",
                    key_path.display()
                ),
                fix: "use the key the certificate was created with".into(),
            });
        }
        let der = &cert_pem.contents;
        Ok(Credential {
            key,
            algorithm: *algorithm,
            // SHA-1 only as the legacy `x5t` thumbprint header, not for security.
            x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der)),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
            subject,
            not_after,
        })
    }

    /// A signed client assertion for `audience` (the token endpoint URL).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                let mut h = Header::new(Algorithm::PS256);
                h.x5t_s256 = Some(self.x5t_s256.clone());
                h
            }
            AssertionAlgorithm::Rs256 => {
                let mut h = Header::new(Algorithm::RS256);
                h.x5t = Some(self.x5t.clone());
                h
            }
        };
        header.typ = Some("JWT".into());
        let now = Utc::now().timestamp();
        let jti: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}
