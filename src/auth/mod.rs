//! Access tokens from Microsoft Entra ID, cached and renewed before they run out.
//!
//! One [`TokenProvider`] per tenant. It asks Entra for a token only when the cached one has passed
//! 80 % of its life (Entra's loop detection, AADSTS50196, punishes clients that ask per call), holds
//! a lock while it asks so that two tasks never renew at once, and drops a token the API rejected
//! with 401 so the next call gets a fresh one. If a renewal fails while the old token is still
//! valid, the old one keeps being used: a short Entra outage must not fail a poll.
//!
//! Tokens and secrets are [`SecretString`]s: their `Debug` prints `[REDACTED]`, and only the HTTP
//! layer calls `expose_secret`. Every secret and token is also registered with `redact`, so that
//! an Entra or API answer echoing it back has it removed before it becomes error text.
//!
//! Entra's answer is untrusted like any server's: a redirect is refused (following a 307 would
//! re-post the secret elsewhere), the body is capped at `crate::http::MAX_TOKEN_BYTES`, and
//! `expires_in` is clamped to `MAX_TOKEN_LIFETIME` so that no instant arithmetic can overflow.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use crate::config::{AuthMethod, TenantConfig, TokenEndpoint};

pub(crate) mod cert;

use crate::http::{error_chain, join_path};
use crate::redact::{self, ServerText};

/// An access token and its timing. `Debug` never shows the token.
pub struct AccessToken {
    secret: SecretString,
    /// When the cache should ask for a new one (80 % of its life).
    renew_at: Instant,
    /// When it stops working.
    pub(crate) expires_at: Instant,
    /// Its `exp` claim (Unix seconds), if it is a JWT that has one.
    exp: Option<i64>,
    generation: u64,
}

impl AccessToken {
    /// The bearer value, for the `Authorization` header only.
    pub fn bearer(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Which token of its provider this is: a renewal gives a new number.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The token's decoded claims (`aud`, `roles`, `scp`, …), or null if it is not a JWT. Decoded
    /// when asked (`auth check`) rather than kept: an Entra token's claims are a few KB of maps,
    /// and a service of 10,000 tenants keeps 10,000 tokens.
    pub(crate) fn claims(&self) -> serde_json::Value {
        claims_of(self.bearer())
    }
}

/// The permissions a token's `claims` grant: `roles` (application) and the words of `scp`
/// (delegated), which Entra names alike for both kinds.
pub(crate) fn permissions_in(claims: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = claims["roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(scp) = claims["scp"].as_str() {
        out.extend(scp.split(' ').filter(|x| !x.is_empty()).map(str::to_owned));
    }
    out
}

/// The claims of a JWT: only the payload, never the signature (they say who the token is for and
/// what it allows); null if `token` is not a JWT.
fn claims_of(token: &str) -> serde_json::Value {
    token
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
        .unwrap_or(serde_json::Value::Null)
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
    pub(crate) status: u16,
    /// OAuth `error` (`invalid_client`, …), redacted.
    pub(crate) error: ServerText,
    /// The first line of `error_description` (trace and correlation IDs dropped), redacted.
    pub(crate) description: ServerText,
    /// `error_codes`: the AADSTS numbers.
    pub(crate) codes: Vec<u32>,
}

impl EntraError {
    /// Parses Entra's JSON error body; `None` when it is not one.
    fn parse(status: u16, body: &str) -> Option<EntraError> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let error = ServerText::with_limit(v.get("error")?.as_str()?, 80);
        let description = ServerText::new(
            v.get("error_description")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or(""),
        );
        let mut codes: Vec<u32> = v
            .get("error_codes")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .filter_map(|x| u32::try_from(x).ok())
                    .collect()
            })
            .unwrap_or_default();
        if codes.is_empty() {
            // Fall back to the number in "AADSTS7000215: …".
            if let Some(n) = description
                .as_str()
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
    fn explanation(&self) -> Option<(&'static str, &'static str)> {
        self.codes.iter().find_map(|c| explain_aadsts(*c))
    }
}

/// Cause and fix for an AADSTS code; `None` for codes we have no advice for (Entra's own text is
/// still shown).
fn explain_aadsts(code: u32) -> Option<(&'static str, &'static str)> {
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

impl EntraError {
    /// What to do about it: ours for the codes admins meet, else Microsoft's lookup page, which
    /// explains every AADSTS code.
    fn fix(&self) -> String {
        match (self.explanation(), self.codes.first()) {
            (Some((_, fix)), _) => fix.to_owned(),
            (None, Some(code)) => format!(
                "see https://login.microsoftonline.com/error?code={code} for what this code means"
            ),
            (None, None) => {
                "check login_url, tenant_id and client_id; `mde-alerts auth check` shows the details"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.codes.first() {
            Some(code) => write!(f, "AADSTS{code} ({})", self.error)?,
            None => write!(f, "{} (HTTP {})", self.error, self.status)?,
        }
        if let Some((cause, _)) = self.explanation() {
            write!(f, ": {cause}.")?;
        }
        if !self.description.is_empty() {
            write!(f, " Entra said: {}", self.description)?;
        }
        Ok(())
    }
}

/// Why no token could be had. Every message says it was the sign-in (Entra ID) that failed, so that
/// a poll's error is not mistaken for the alerts API's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Entra answered with an error.
    #[error("sign-in refused by Entra ID: {0}")]
    Entra(EntraError),
    /// Entra could not be reached.
    #[error("sign-in failed: cannot reach Entra ID at {url}: {reason}")]
    Network {
        /// The token URL (no secrets in it).
        url: String,
        /// The transport error, without the URL (redacted).
        reason: ServerText,
    },
    /// Entra answered, but not with a token.
    #[error(
        "sign-in failed: Entra ID at {url} answered HTTP {status} without a usable token: {detail}"
    )]
    BadResponse {
        /// The token URL.
        url: String,
        /// HTTP status (0: nothing was sent).
        status: u16,
        /// What was wrong (redacted).
        detail: ServerText,
    },
    /// Entra's URL answered with a redirect, which is never followed.
    #[error(
        "sign-in failed: {url} answered HTTP {status}, a redirect to {location}; Entra ID never redirects token requests, so it was not followed and the credentials went nowhere else"
    )]
    Redirected {
        /// The token URL.
        url: String,
        /// HTTP status (3xx).
        status: u16,
        /// Where it pointed (redacted).
        location: ServerText,
    },
    /// The secret could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl AuthError {
    /// What the admin can do about it: printed once, as `fix: …`, after the error.
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            AuthError::Entra(e) => e.fix(),
            AuthError::Network { .. } => "check login_url, and that this machine can reach that host (DNS, firewall, [http] proxy or HTTPS_PROXY)".into(),
            AuthError::BadResponse { .. } | AuthError::Redirected { .. } => "check login_url (the sign-in host of your cloud, e.g. https://login.microsoftonline.com) and any proxy in between".into(),
            AuthError::Config(c) => c.fix.clone(),
        })
    }

    /// Whether trying again later may help (network trouble, Entra's 5xx).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            AuthError::Network { .. } => true,
            AuthError::BadResponse { status, .. } => *status >= 500 || *status == 429,
            AuthError::Entra(e) => e.status >= 500 || e.status == 429,
            AuthError::Redirected { .. } | AuthError::Config(_) => false,
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

/// The longest token life believed: a day. Entra issues tokens for 60–90 minutes; a longer
/// `expires_in` (up to `99999999999999999999`) is a broken or hostile answer, and believing it
/// would overflow the instant arithmetic or keep a revoked token for years.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `expires_in` as a lifetime: seconds as a number or a string (v1 sends `"3599"`), any size,
/// clamped to 1 s ..= [`MAX_TOKEN_LIFETIME`]; `None` when it is missing, negative or not a number.
fn token_lifetime(v: Option<&serde_json::Value>) -> Option<Duration> {
    let secs: f64 = match v? {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let max = MAX_TOKEN_LIFETIME.as_secs_f64();
    if secs > max {
        tracing::warn!(
            expires_in = secs,
            "Entra gave the token a lifetime of more than a day; believing a day."
        );
    }
    Some(Duration::from_secs_f64(secs.clamp(1.0, max)))
}

impl TokenProvider {
    /// A provider of `tenant`'s tokens for `api` (its audience), reading its secret now.
    pub fn new(
        http: reqwest::Client,
        tenant: &TenantConfig,
        api: crate::config::SourceKind,
    ) -> Result<Self, AuthError> {
        let grant = match &tenant.auth {
            AuthMethod::ClientSecret(src) => Grant::Secret(registered(src.read()?)),
            AuthMethod::Certificate { .. } => Grant::Certificate(cert::Credential::load(tenant)?),
            AuthMethod::Password {
                username,
                password,
                client_secret,
            } => Grant::Password {
                username: username.clone(),
                password: registered(password.read()?),
                client_secret: client_secret
                    .as_ref()
                    .map(|s| s.read().map(registered))
                    .transpose()?,
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
            resource: tenant.resource_for(api),
            cache: tokio::sync::Mutex::new(None),
            issued: AtomicU64::new(0),
        })
    }

    /// The grant's name, as in the config.
    pub(crate) fn grant_name(&self) -> &'static str {
        match self.grant {
            Grant::Secret(_) => "client_secret",
            Grant::Certificate(_) => "certificate",
            Grant::Password { .. } => "password",
        }
    }

    /// The certificate's subject and expiry, for a certificate grant.
    pub(crate) fn certificate(&self) -> Option<(&str, chrono::DateTime<chrono::Utc>)> {
        match &self.grant {
            Grant::Certificate(c) => Some((&c.subject, c.not_after)),
            _ => None,
        }
    }

    /// When the cached token expires (Unix seconds, from its `exp` claim), if there is one.
    pub(crate) fn current_expiry(&self) -> Option<i64> {
        self.cache.try_lock().ok()?.as_ref()?.exp
    }

    /// Whether `other` signs in exactly as this one does: the same token URL, client, audience
    /// and credentials (a secret rotated in place, or a new certificate, makes them differ). The
    /// service keeps this provider, and its cached token, across a reload only then.
    pub(crate) fn same_sign_in(&self, other: &TokenProvider) -> bool {
        let same = |a: &SecretString, b: &SecretString| a.expose_secret() == b.expose_secret();
        self.token_url == other.token_url
            && self.endpoint == other.endpoint
            && self.client_id == other.client_id
            && self.resource == other.resource
            && match (&self.grant, &other.grant) {
                (Grant::Secret(a), Grant::Secret(b)) => same(a, b),
                (Grant::Certificate(a), Grant::Certificate(b)) => a.same_certificate(b),
                (
                    Grant::Password {
                        username: u1,
                        password: p1,
                        client_secret: s1,
                    },
                    Grant::Password {
                        username: u2,
                        password: p2,
                        client_secret: s2,
                    },
                ) => {
                    u1 == u2
                        && same(p1, p2)
                        && match (s1, s2) {
                            (Some(a), Some(b)) => same(a, b),
                            (None, None) => true,
                            _ => false,
                        }
                }
                _ => false,
            }
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
                    tracing::warn!(error = %e, fix = e.hint().as_deref(), "Token renewal failed; the current token is still valid.");
                    Ok(old.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forgets `rejected` (the API answered 401 to it) so that the next [`Self::token`] renews.
    /// A token that was already replaced is left alone, so that a burst of 401s renews once.
    pub(crate) async fn reject(&self, rejected: &AccessToken) {
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
                        url: self.token_url.to_string(),
                        status: 0,
                        detail: ServerText::new(&format!(
                            "nothing was sent: cannot sign the client assertion: {e}"
                        )),
                    })?;
                redact::register_token(&assertion);
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
        let url = self.token_url.to_string();
        let resp = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError::Network {
                url: url.clone(),
                reason: ServerText::new(&error_chain(&e.without_url())),
            })?;
        let status = resp.status().as_u16();
        if let Some(location) = crate::http::redirect_target(&resp) {
            return Err(AuthError::Redirected {
                url,
                status,
                location,
            });
        }
        let content_type = crate::http::content_type(&resp);
        if status != 200 {
            let body = crate::http::read_error_body(resp).await;
            let text = String::from_utf8_lossy(&body);
            return Err(match EntraError::parse(status, &text) {
                Some(e) => AuthError::Entra(e),
                None => AuthError::BadResponse {
                    url,
                    status,
                    detail: ServerText::with_limit(
                        &crate::http::describe_body(content_type.as_deref(), &body),
                        1000,
                    ),
                },
            });
        }
        let bad = |detail: &str| AuthError::BadResponse {
            url: url.clone(),
            status,
            detail: ServerText::with_limit(detail, 1000),
        };
        let body = crate::http::read_body(resp, crate::http::MAX_TOKEN_BYTES)
            .await
            .map_err(|e| match e {
                crate::http::BodyError::Cut(reason) => AuthError::Network {
                    url: url.clone(),
                    reason: ServerText::new(&reason),
                },
                e => bad(&format!("{e}; Entra's token answers are a few KB")),
            })?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            bad(&format!(
                "the body is not JSON ({e}): {}",
                crate::http::describe_body(content_type.as_deref(), &body)
            ))
        })?;
        let access = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("no access_token in the response"))?;
        // Known from now on: an API that echoes it back gets it redacted.
        redact::register_token(access);
        let life = token_lifetime(v.get("expires_in"))
            .ok_or_else(|| bad("expires_in is missing or not a number of seconds"))?;
        let generation = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            lifetime_secs = life.as_secs(),
            generation,
            "Obtained an access token."
        );
        Ok(AccessToken {
            exp: claims_of(access)["exp"].as_i64(),
            secret: SecretString::from(access.to_owned()),
            // `life` is at most a day: these cannot overflow.
            renew_at: started + life.mul_f64(RENEW_AT),
            expires_at: started + life,
            generation,
        })
    }
}

/// `secret`, after registering it for redaction.
fn registered(secret: SecretString) -> SecretString {
    redact::register_secret(secret.expose_secret());
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entra_error_and_explains_it() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2023-05-06 06:03:00Z","error_codes":[7000215],"timestamp":"2023-05-06 06:03:00Z"}"#;
        let e = EntraError::parse(401, body).unwrap();
        assert_eq!(e.codes, vec![7000215]);
        assert!(!e.description.as_str().contains("Trace ID"));
        let shown = e.to_string();
        assert!(shown.contains("AADSTS7000215"), "{shown}");
        assert!(
            !shown.contains("not its Secret ID"),
            "the fix is said once, apart: {shown}"
        );
        assert!(e.fix().contains("not its Secret ID"));
    }

    #[test]
    fn unknown_code_keeps_entras_text() {
        let body = r#"{"error":"invalid_request","error_description":"AADSTS123456: Something new.","error_codes":[123456]}"#;
        let e = EntraError::parse(400, body).unwrap();
        assert!(e.explanation().is_none());
        assert!(e.to_string().contains("Something new."));
        assert!(
            e.fix()
                .contains("see https://login.microsoftonline.com/error?code=123456"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("login.microsoftonline.com/error"),
            "{e}"
        );
    }

    #[test]
    fn code_from_description_when_codes_missing() {
        let body = r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        let e = EntraError::parse(400, body).unwrap();
        assert_eq!(e.codes, vec![90002]);
    }

    #[test]
    fn error_chain_does_not_repeat_a_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read /x: {0}")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::from_raw_os_error(2));
        let shown = error_chain(&e);
        assert_eq!(shown.matches("os error 2").count(), 1, "{shown}");
        #[derive(Debug, thiserror::Error)]
        #[error("request failed")]
        struct Plain(#[source] std::io::Error);
        let shown = error_chain(&Plain(std::io::Error::other("reset")));
        assert_eq!(shown, "request failed: reset");
    }

    #[test]
    fn token_lifetimes_are_clamped_not_overflowed() {
        use serde_json::json;
        let life = |v: serde_json::Value| token_lifetime(Some(&v));
        assert_eq!(life(json!(3599)), Some(Duration::from_secs(3599)));
        assert_eq!(life(json!("3599")), Some(Duration::from_secs(3599)));
        for huge in [
            json!(9_300_000_000_000_000_000u64),
            json!(u64::MAX),
            serde_json::from_str("99999999999999999999").unwrap(),
            json!("99999999999999999999"),
            json!(1e300),
        ] {
            assert_eq!(life(huge.clone()), Some(MAX_TOKEN_LIFETIME), "{huge}");
        }
        assert_eq!(life(json!(0)), Some(Duration::from_secs(1)));
        assert_eq!(life(json!(-5)), None);
        assert_eq!(life(json!("soon")), None);
        assert_eq!(life(json!(null)), None);
        assert_eq!(token_lifetime(None), None);
        // The arithmetic the provider does on it cannot overflow.
        let _ = Instant::now() + MAX_TOKEN_LIFETIME;
    }

    #[test]
    fn entra_error_text_is_redacted() {
        redact::register_secret("entra-echo-S3cret~value");
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: client_secret=entra-echo-S3cret~value&client_id=x","error_codes":[7000215, 99999999999]}"#;
        let e = EntraError::parse(401, body).unwrap();
        let shown = AuthError::Entra(e.clone()).to_string();
        assert!(!shown.contains("entra-echo-S3cret"), "{shown}");
        assert_eq!(
            e.codes,
            vec![7000215],
            "a code beyond u32 is dropped, not wrapped"
        );
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
