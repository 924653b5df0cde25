//! Access tokens from Microsoft Entra ID, cached and renewed before they run out.
//!
//! One [`TokenProvider`] per tenant. It asks Entra for a token only when the cached one has passed
//! 80 % of its life (Entra's loop detection, AADSTS50196, punishes clients that ask per call), holds
//! a lock while it asks so that two tasks never renew at once, and drops a token the API rejected
//! with 401 so the next call gets a fresh one. If a renewal fails while the old token is still
//! valid, the old one keeps being used: a short Entra outage must not fail a poll.
//!
//! Tokens and secrets are [`SecretString`]s: their `Debug` prints `[REDACTED]`, and only the HTTP
//! layer calls `expose_secret`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use crate::config::{AuthMethod, TenantConfig, TokenEndpoint};

pub mod cert;

/// An access token and its timing. `Debug` never shows the token.
pub struct AccessToken {
    secret: SecretString,
    /// When the cache should ask for a new one (80 % of its life).
    pub renew_at: Instant,
    /// When it stops working.
    pub expires_at: Instant,
    /// The token's decoded claims (`aud`, `roles`, `scp`, …), or null if it is not a JWT.
    pub claims: serde_json::Value,
    generation: u64,
}

impl AccessToken {
    /// The bearer value, for the `Authorization` header only.
    pub fn bearer(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("generation", &self.generation)
            .finish()
    }
}

/// Entra's error body, parsed: what it said, and what it means for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    /// HTTP status.
    pub status: u16,
    /// OAuth `error` (`invalid_client`, …).
    pub error: String,
    /// The first line of `error_description` (trace and correlation IDs dropped).
    pub description: String,
    /// `error_codes`: the AADSTS numbers.
    pub codes: Vec<u32>,
}

impl EntraError {
    /// Parses Entra's JSON error body; `None` when it is not one.
    pub fn parse(status: u16, body: &str) -> Option<EntraError> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let error = v.get("error")?.as_str()?.to_owned();
        let description = v
            .get("error_description")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let mut codes: Vec<u32> = v
            .get("error_codes")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect()
            })
            .unwrap_or_default();
        if codes.is_empty() {
            // Fall back to the number in "AADSTS7000215: …".
            if let Some(n) = description
                .strip_prefix("AADSTS")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse().ok())
            {
                codes.push(n);
            }
        }
        Some(EntraError {
            status,
            error,
            description,
            codes,
        })
    }

    /// The cause and the fix for the AADSTS codes admins meet, in plain words.
    pub fn explanation(&self) -> Option<(&'static str, &'static str)> {
        self.codes.iter().find_map(|c| explain_aadsts(*c))
    }
}

/// Cause and fix for an AADSTS code; `None` for codes we have no advice for (Entra's own text is
/// still shown).
pub fn explain_aadsts(code: u32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        7000215 => (
            "the client secret is wrong",
            "use the secret's Value (shown once when it was created), not its Secret ID; create a new secret if the value is lost",
        ),
        7000222 => (
            "the client secret has expired",
            "create a new client secret under the app registration's Certificates & secrets, then update client_secret_env / client_secret_file",
        ),
        700016 => (
            "no application with this client_id exists in the tenant",
            "check client_id against the app registration's Application (client) ID, and that tenant_id is the tenant the app lives in",
        ),
        90002 => (
            "the tenant does not exist",
            "check tenant_id: use the Directory (tenant) ID from the app registration's overview",
        ),
        50126 => (
            "the user name or password is wrong",
            "check username and the password source",
        ),
        50076 | 50079 => (
            "the user must use multi-factor authentication, which the password flow cannot do",
            "use auth = \"certificate\" or \"client_secret\" with an application permission instead",
        ),
        50034 => (
            "the user does not exist in this tenant",
            "check username (it is the user principal name, e.g. alice@contoso.com)",
        ),
        500011 => (
            "Defender for Endpoint is not provisioned in this tenant (its resource was not found)",
            "make sure the tenant has Defender for Endpoint, and that the resource is https://api.securitycenter.microsoft.com",
        ),
        700027 | 700024 => (
            "Entra rejected the signed certificate assertion",
            "check that the certificate uploaded to the app registration matches the private key, and that this machine's clock is right",
        ),
        7000218 => (
            "the request carried no client secret or certificate",
            "configure a client secret or certificate for this tenant",
        ),
        65001 => (
            "the app's permissions have not been consented to",
            "grant admin consent for the app's WindowsDefenderATP permissions",
        ),
        50196 => (
            "Entra saw the same token request too often (loop detection)",
            "this should not happen with mde-alerts' token cache; wait a few minutes",
        ),
        _ => return None,
    })
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.codes.first() {
            Some(code) => write!(f, "AADSTS{code} ({})", self.error)?,
            None => write!(f, "{} (HTTP {})", self.error, self.status)?,
        }
        if let Some((cause, fix)) = self.explanation() {
            write!(f, ": {cause}. Fix: {fix}.")?;
        }
        if !self.description.is_empty() {
            write!(f, " Entra said: {}", self.description)?;
        }
        Ok(())
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Entra answered with an error.
    #[error("Entra refused the token request: {0}")]
    Entra(EntraError),
    /// Entra could not be reached.
    #[error("cannot reach Entra at {url}: {reason}")]
    Network {
        /// The token URL (no secrets in it).
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Entra answered, but not with a token.
    #[error("Entra answered HTTP {status} without a usable token: {detail}")]
    BadResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// The secret could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl AuthError {
    /// Whether trying again later may help (network trouble, Entra's 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Network { .. } => true,
            AuthError::BadResponse { status, .. } => *status >= 500 || *status == 429,
            AuthError::Entra(e) => e.status >= 500 || e.status == 429,
            AuthError::Config(_) => false,
        }
    }
}

/// What the app presents to Entra.
enum Grant {
    Secret(SecretString),
    Certificate(cert::Credential),
    Password {
        username: String,
        password: SecretString,
        client_secret: Option<SecretString>,
    },
}

/// Gets, caches and renews tokens for one tenant.
pub struct TokenProvider {
    http: reqwest::Client,
    token_url: Url,
    endpoint: TokenEndpoint,
    client_id: String,
    grant: Grant,
    resource: String,
    cache: tokio::sync::Mutex<Option<Arc<AccessToken>>>,
    issued: AtomicU64,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("grant", &self.grant_name())
            .field("credentials", &"[REDACTED]")
            .finish()
    }
}

/// The share of a token's life after which it is renewed.
const RENEW_AT: f64 = 0.8;

impl TokenProvider {
    /// A provider for `tenant`, reading its secret now.
    pub fn new(http: reqwest::Client, tenant: &TenantConfig) -> Result<Self, AuthError> {
        let grant = match &tenant.auth {
            AuthMethod::ClientSecret(src) => Grant::Secret(src.read()?),
            AuthMethod::Certificate { .. } => Grant::Certificate(cert::Credential::load(tenant)?),
            AuthMethod::Password {
                username,
                password,
                client_secret,
            } => Grant::Password {
                username: username.clone(),
                password: password.read()?,
                client_secret: client_secret.as_ref().map(|s| s.read()).transpose()?,
            },
        };
        let path = match tenant.token_endpoint {
            TokenEndpoint::V1 => format!("{}/oauth2/token", tenant.tenant_id),
            TokenEndpoint::V2 => format!("{}/oauth2/v2.0/token", tenant.tenant_id),
        };
        let token_url = join_path(&tenant.login_url, &path);
        Ok(TokenProvider {
            http,
            token_url,
            endpoint: tenant.token_endpoint,
            client_id: tenant.client_id.clone(),
            grant,
            resource: tenant.resource.clone(),
            cache: tokio::sync::Mutex::new(None),
            issued: AtomicU64::new(0),
        })
    }

    /// The grant's name, as in the config.
    pub fn grant_name(&self) -> &'static str {
        match self.grant {
            Grant::Secret(_) => "client_secret",
            Grant::Certificate(_) => "certificate",
            Grant::Password { .. } => "password",
        }
    }

    /// The certificate's subject and expiry, for a certificate grant.
    pub fn certificate(&self) -> Option<(&str, chrono::DateTime<chrono::Utc>)> {
        match &self.grant {
            Grant::Certificate(c) => Some((&c.subject, c.not_after)),
            _ => None,
        }
    }

    /// When the cached token expires (Unix seconds, from its `exp` claim), if there is one.
    pub fn current_expiry(&self) -> Option<i64> {
        self.cache.try_lock().ok()?.as_ref()?.claims["exp"].as_i64()
    }

    /// How many tokens this provider has obtained.
    pub fn tokens_obtained(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a new one once the cached one is past 80 % of its life.
    pub async fn token(&self) -> Result<Arc<AccessToken>, AuthError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(t) = cache.as_ref()
            && now < t.renew_at
        {
            return Ok(t.clone());
        }
        match self.request().await {
            Ok(t) => {
                let t = Arc::new(t);
                *cache = Some(t.clone());
                Ok(t)
            }
            Err(e) => match cache.as_ref() {
                // Renewal failed but the old token still works: keep going on it.
                Some(old) if now + Duration::from_secs(5) < old.expires_at && e.is_transient() => {
                    tracing::warn!(error = %e, "Token renewal failed; the current token is still valid.");
                    Ok(old.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forgets `rejected` (the API answered 401 to it) so that the next [`Self::token`] renews.
    /// A token that was already replaced is left alone, so that a burst of 401s renews once.
    pub async fn reject(&self, rejected: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|t| t.generation == rejected.generation)
        {
            *cache = None;
        }
    }

    async fn request(&self) -> Result<AccessToken, AuthError> {
        let scope = format!("{}/.default", self.resource);
        let assertion;
        let mut form: Vec<(&str, &str)> = vec![("client_id", &self.client_id)];
        match &self.grant {
            Grant::Secret(secret) => {
                form.push(("grant_type", "client_credentials"));
                form.push(("client_secret", secret.expose_secret()));
            }
            Grant::Certificate(c) => {
                assertion = c
                    .assertion(&self.client_id, self.token_url.as_str())
                    .map_err(|e| AuthError::BadResponse {
                        status: 0,
                        detail: format!("cannot sign the client assertion: {e}"),
                    })?;
                form.push(("grant_type", "client_credentials"));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", &assertion));
            }
            Grant::Password {
                username,
                password,
                client_secret,
            } => {
                form.push(("grant_type", "password"));
                form.push(("username", username));
                form.push(("password", password.expose_secret()));
                if let Some(s) = client_secret {
                    form.push(("client_secret", s.expose_secret()));
                }
            }
        }
        match self.endpoint {
            TokenEndpoint::V1 => form.push(("resource", &self.resource)),
            TokenEndpoint::V2 => form.push(("scope", &scope)),
        }
        let started = Instant::now();
        let resp = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError::Network {
                url: self.token_url.to_string(),
                reason: error_chain(&e),
            })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| AuthError::Network {
            url: self.token_url.to_string(),
            reason: error_chain(&e),
        })?;
        if status != 200 {
            return Err(match EntraError::parse(status, &body) {
                Some(e) => AuthError::Entra(e),
                None => AuthError::BadResponse {
                    status,
                    detail: snippet(&body),
                },
            });
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| AuthError::BadResponse {
                status,
                detail: format!("the body is not JSON ({e})"),
            })?;
        let access = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::BadResponse {
                status,
                detail: "no access_token in the response".into(),
            })?;
        // v1 sends numbers as strings ("3599"), v2 as integers.
        let expires_in = match v.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| AuthError::BadResponse {
            status,
            detail: "expires_in is missing or not a number".into(),
        })?;
        let life = Duration::from_secs(expires_in.max(1));
        let generation = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            lifetime_secs = expires_in,
            generation,
            "Obtained an access token."
        );
        // Only the claims, never the signature: they say who the token is for and what it allows.
        let claims = access
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    p.trim_end_matches('='),
                )
                .ok()
            })
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(AccessToken {
            claims,
            secret: SecretString::from(access.to_owned()),
            renew_at: started + life.mul_f64(RENEW_AT),
            expires_at: started + life,
            generation,
        })
    }
}

/// Appends `path` to a base URL that may itself carry a path (private endpoints, simulators).
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    u.set_path(&joined);
    u
}

/// The error and its causes on one line (reqwest hides the useful part in `source()`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The start of a response body, for error messages.
pub fn snippet(body: &str) -> String {
    let cut: String = body.chars().take(200).collect();
    if cut.len() < body.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entra_error_and_explains_it() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2023-05-06 06:03:00Z","error_codes":[7000215],"timestamp":"2023-05-06 06:03:00Z"}"#;
        let e = EntraError::parse(401, body).unwrap();
        assert_eq!(e.codes, vec![7000215]);
        assert!(!e.description.contains("Trace ID"));
        let shown = e.to_string();
        assert!(shown.contains("AADSTS7000215"), "{shown}");
        assert!(shown.contains("not its Secret ID"), "{shown}");
    }

    #[test]
    fn unknown_code_keeps_entras_text() {
        let body = r#"{"error":"invalid_request","error_description":"AADSTS123456: Something new.","error_codes":[123456]}"#;
        let e = EntraError::parse(400, body).unwrap();
        assert!(e.explanation().is_none());
        assert!(e.to_string().contains("Something new."));
    }

    #[test]
    fn code_from_description_when_codes_missing() {
        let body = r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        let e = EntraError::parse(400, body).unwrap();
        assert_eq!(e.codes, vec![90002]);
    }

    #[test]
    fn join_path_keeps_base_path() {
        let u = Url::parse("http://127.0.0.1:9/login/").unwrap();
        assert_eq!(
            join_path(&u, "t/oauth2/token").as_str(),
            "http://127.0.0.1:9/login/t/oauth2/token"
        );
    }
}
