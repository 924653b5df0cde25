//! Entra ID's token endpoints, v1 (`/{tenant}/oauth2/token`) and v2 (`…/oauth2/v2.0/token`):
//! client credentials with a secret or a certificate assertion, the password grant, and Entra's
//! error bodies (AADSTS codes) for each way sign-in fails.

// Helpers answer with an axum `Response` as their error: what every handler returns.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::tenants::TenantFault;
use crate::{GRAPH_ROOTS, RESOURCE, Shared, SimConfig};

/// The Graph root a scope names: `https://graph.microsoft.com/.default` and
/// `https://graph.microsoft.com/SecurityAlert.Read.All` both name `https://graph.microsoft.com`.
fn graph_root_of(scope: &str) -> Option<&'static str> {
    scope.split_whitespace().find_map(|s| {
        GRAPH_ROOTS.iter().copied().find(|r| {
            s.get(..r.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(r))
                && s.get(r.len()..).is_some_and(|tail| tail.starts_with('/'))
        })
    })
}

/// `len` characters of base64url text that differ with `seed`: stands in for Entra's opaque
/// claims (`aio`, `rh`, `xms_rd`), whose content no client may read but whose size it carries.
fn opaque(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether a token for `audience` is a Graph token.
fn is_graph(audience: &str) -> bool {
    let a = audience.trim_end_matches('/');
    GRAPH_ROOTS.iter().any(|r| a.eq_ignore_ascii_case(r))
}

/// What Entra knows about the app and its users.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The app's client secret has expired (AADSTS7000222 even when it is right).
    pub secret_expired: bool,
    /// The PEM certificate registered on the app, if any: assertions are verified against it.
    pub certificate_pem: Option<String>,
    /// Users for the password grant.
    pub users: Vec<SimUser>,
    /// Whether Defender for Endpoint's service principal exists in the tenant (AADSTS500011 if
    /// not).
    pub resource_provisioned: bool,
    /// Application permissions (`roles`) in app tokens.
    pub roles: Vec<String>,
    /// Delegated permissions (`scp`) in user tokens.
    pub scopes: String,
    /// How far Entra's clock is ahead of this machine's, in seconds (assertions outside their
    /// validity window get AADSTS700024).
    pub clock_skew_secs: i64,
    /// Microsoft Graph permissions: the `roles` of app tokens for a Graph root, and (space
    /// separated) the `scp` of user tokens for one. `[]` for a "permission missing" test.
    pub graph_roles: Vec<String>,
    /// Entra refuses tokens for Microsoft Graph alone with this AADSTS code: 65001 (consent
    /// missing, as for a delegated app nobody consented to for Graph) or 500011 (Graph's
    /// service principal not found, as in a cloud without it). `None`: Graph tokens are issued.
    pub graph_sign_in_refused: Option<u32>,
}

/// A user for the password grant.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// User principal name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Conditional Access requires MFA for this user: 50076 (MFA required) or 50079 (MFA
    /// registration required).
    pub mfa: Option<u32>,
}

/// The demo user of the password grant.
pub const DEMO_USER: &str = "analyst@contoso.example";
/// Its password (a simulator credential).
pub const DEMO_PASSWORD: &str = "sim-Passw0rd!-not-real";

impl Default for Identity {
    fn default() -> Self {
        Identity {
            secret_expired: false,
            certificate_pem: None,
            users: vec![
                SimUser {
                    username: DEMO_USER.into(),
                    password: DEMO_PASSWORD.into(),
                    mfa: None,
                },
                SimUser {
                    username: "mfa-user@contoso.example".into(),
                    password: DEMO_PASSWORD.into(),
                    mfa: Some(50076),
                },
                SimUser {
                    username: "new-user@contoso.example".into(),
                    password: DEMO_PASSWORD.into(),
                    mfa: Some(50079),
                },
            ],
            resource_provisioned: true,
            roles: vec!["Alert.Read.All".into()],
            scopes: "Alert.Read".into(),
            clock_skew_secs: 0,
            graph_roles: vec!["SecurityAlert.Read.All".into()],
            graph_sign_in_refused: None,
        }
    }
}

fn entra_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    entra_error_with(status, error, code, text, None)
}

fn entra_error_with(
    status: StatusCode,
    error: &str,
    code: u32,
    text: &str,
    suberror: Option<&str>,
) -> Response {
    let now = chrono::Utc::now();
    let mut body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {text}\r\nTrace ID: 0b1e2a3c-0000-4000-8000-000000000001\r\nCorrelation ID: 0b1e2a3c-0000-4000-8000-000000000002\r\nTimestamp: {}",
            now.format("%Y-%m-%d %H:%M:%SZ")
        ),
        "error_codes": [code],
        "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": "0b1e2a3c-0000-4000-8000-000000000001",
        "correlation_id": "0b1e2a3c-0000-4000-8000-000000000002",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    if let Some(sub) = suberror {
        body["suberror"] = Value::from(sub);
    }
    (status, axum::Json(body)).into_response()
}

pub(crate) async fn token_get() -> Response {
    entra_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        900561,
        "The endpoint only accepts POST requests.",
    )
}

pub(crate) async fn token_v1(
    AxState(s): AxState<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    token(s, tenant, form, false)
}

pub(crate) async fn token_v2(
    AxState(s): AxState<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    token(s, tenant, form, true)
}

fn token(s: Shared, tenant: String, form: HashMap<String, String>, v2: bool) -> Response {
    let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
    let Some(key) = st.tenants.resolve(&st.cfg, &tenant) else {
        st.home.stats.token_requests += 1;
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    };
    st.stats_of(&key).token_requests += 1;
    let serial = st.stats_of(&key).token_requests;
    let tenant_fault = st.tenants.fault(&key);
    let cfg = st.cfg.clone();
    let id = &cfg.identity;
    let tid = key.id(&cfg).to_owned();
    let get = |k: &str| form.get(k).map(String::as_str);
    let grant = match get("grant_type") {
        Some(g @ ("client_credentials" | "password")) => g,
        Some(other) => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
        None => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
    };
    if get("client_id").map(str::to_ascii_lowercase) != Some(cfg.client_id.to_ascii_lowercase()) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                get("client_id").unwrap_or("")
            ),
        );
    }
    if tenant_fault == Some(TenantFault::SignIn) {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
        );
    }
    let audience = if v2 {
        if get("resource").is_some() {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                901002,
                "The 'resource' request parameter is not supported.",
            );
        }
        match get("scope") {
            Some(sc) if graph_root_of(sc).is_some() => {
                graph_root_of(sc).unwrap_or_default().to_owned()
            }
            Some(sc) => sc
                .split_whitespace()
                .find(|x| x.ends_with("/.default"))
                .unwrap_or(sc)
                .trim_end_matches("/.default")
                .to_owned(),
            None => {
                return entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                );
            }
        }
    } else {
        get("resource")
            .unwrap_or("00000002-0000-0000-c000-000000000000")
            .to_owned()
    };
    if audience == RESOURCE && !id.resource_provisioned {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {RESOURCE} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    }
    if let Some(code) = id.graph_sign_in_refused.filter(|_| is_graph(&audience)) {
        return match code {
            500011 => entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {audience} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
            ),
            code => entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                code,
                &format!(
                    "The user or administrator has not consented to use the application with ID '{}' named 'mde-alerts'. Send an interactive authorization request for this user and resource.",
                    cfg.client_id
                ),
            ),
        };
    }
    // The app's own credential: a secret or a certificate assertion (optional for a public client
    // using the password grant).
    let has_credential = get("client_secret").is_some() || get("client_assertion").is_some();
    if grant == "client_credentials" || has_credential {
        if let Some(assertion) = get("client_assertion") {
            if let Err(r) = check_assertion(&cfg, &tenant, get("client_assertion_type"), assertion)
            {
                return r;
            }
        } else {
            match get("client_secret") {
                None => {
                    return entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000218,
                        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                    );
                }
                Some(sec) if sec != cfg.client_secret => {
                    return entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000215,
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                    );
                }
                Some(_) if id.secret_expired => {
                    return entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000222,
                        "The provided client secret keys for app are expired. Visit the Azure portal to create new keys for your app.",
                    );
                }
                Some(_) => {}
            }
        }
    }
    let user = if grant == "password" {
        let name = get("username").unwrap_or("");
        let Some(u) = id
            .users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(name))
        else {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50034,
                "The user account does not exist in the directory. To sign into this application, the account must be added to the directory.",
            );
        };
        if get("password") != Some(u.password.as_str()) {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            );
        }
        match u.mfa {
            Some(50079) => {
                return entra_error_with(
                    StatusCode::BAD_REQUEST,
                    "interaction_required",
                    50079,
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access the resource.",
                    Some("basic_action"),
                );
            }
            Some(code) => {
                return entra_error_with(
                    StatusCode::BAD_REQUEST,
                    "interaction_required",
                    code,
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.",
                    Some("basic_action"),
                );
            }
            None => {}
        }
        Some(u.username.clone())
    } else {
        None
    };
    let now = chrono::Utc::now().timestamp();
    let life = cfg.token_lifetime.as_secs().max(1) as i64;
    let mut claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now - 300,
        "nbf": now - 300,
        "exp": now + life,
        "appid": cfg.client_id,
        "tid": tid,
        "ver": "1.0",
        "uti": format!("sim{serial}"),
        // Entra's opaque claims, at their real lengths: a real token is ~1.5 KB, and a client that
        // keeps thousands of them must be measured against that, not against a short one.
        "aio": opaque(serial, 124),
        "app_displayname": "mde-alerts simulator",
        "idp": format!("https://sts.windows.net/{tid}/"),
        "idtyp": "app",
        "oid": format!("{:08x}-0000-4000-8000-{serial:012x}", 0x5a17_u32),
        "sub": format!("{:08x}-0000-4000-8000-{serial:012x}", 0x5a17_u32),
        "rh": opaque(serial.wrapping_add(1), 60),
        "xms_ftd": opaque(serial.wrapping_add(2), 44),
        "xms_idrel": "7 22",
        "xms_rd": opaque(serial.wrapping_add(3), 140),
    });
    let graph = is_graph(&audience);
    let scopes = if graph {
        id.graph_roles.join(" ")
    } else {
        id.scopes.clone()
    };
    match &user {
        Some(upn) => {
            claims["scp"] = Value::from(scopes.clone());
            claims["upn"] = Value::from(upn.clone());
            claims["amr"] = json!(["pwd"]);
            claims["appidacr"] = Value::from(if get("client_secret").is_some() {
                "1"
            } else {
                "0"
            });
        }
        None => {
            claims["roles"] = if graph {
                json!(id.graph_roles)
            } else {
                json!(id.roles)
            };
            claims["appidacr"] = Value::from(if get("client_assertion").is_some() {
                "2"
            } else {
                "1"
            });
        }
    }
    let token = match jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &st.key) {
        Ok(t) => t,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    st.stats_of(&key).tokens_issued += 1;
    if st.issued.len() < 1000 {
        st.issued.push(token.clone());
    }
    let mut body = if v2 {
        json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token})
    } else {
        json!({
            "token_type": "Bearer",
            "expires_in": life.to_string(),
            "ext_expires_in": life.to_string(),
            "expires_on": (now + life).to_string(),
            "not_before": (now - 300).to_string(),
            "resource": audience,
            "access_token": token,
        })
    };
    if user.is_some() {
        body["scope"] = Value::from(scopes);
    }
    axum::Json(body).into_response()
}

/// Verifies a certificate client assertion the way Entra does: registered certificate,
/// thumbprint, signature, audience, issuer and subject, validity window.
fn check_assertion(
    cfg: &SimConfig,
    tenant: &str,
    assertion_type: Option<&str>,
    assertion: &str,
) -> Result<(), Response> {
    let rejected =
        |code: u32, text: &str| entra_error(StatusCode::UNAUTHORIZED, "invalid_client", code, text);
    if assertion_type != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid: client_assertion_type.",
        ));
    }
    let Some(pem) = &cfg.identity.certificate_pem else {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation. No certificate is registered for the app.",
        ));
    };
    let der = match x509_parser::pem::parse_x509_pem(pem.as_bytes()) {
        Ok((_, p)) => p.contents,
        Err(_) => {
            return Err(rejected(
                700027,
                "Client assertion failed signature validation.",
            ));
        }
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation.",
        ));
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| rejected(700027, "Client assertion failed signature validation."))?;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let thumb_ok = match header.alg {
        jsonwebtoken::Algorithm::PS256 => {
            header.x5t_s256.as_deref() == Some(&b64.encode(sha2::Sha256::digest(&der)))
        }
        jsonwebtoken::Algorithm::RS256 => {
            header.x5t.as_deref() == Some(&b64.encode(sha1::Sha1::digest(&der)))
                || header.x5t_s256.as_deref() == Some(&b64.encode(sha2::Sha256::digest(&der)))
        }
        _ => false,
    };
    if !thumb_ok {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation. The certificate thumbprint in the assertion is not registered for the app.",
        ));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let mut v = jsonwebtoken::Validation::new(header.alg);
    // Time is checked below against Entra's (possibly skewed) clock.
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(assertion, &key, &v)
        .map_err(|_| rejected(700027, "Client assertion failed signature validation."))?;
    let c = &data.claims;
    let now = chrono::Utc::now().timestamp() + cfg.identity.clock_skew_secs;
    let (nbf, exp) = (
        c["nbf"].as_i64().unwrap_or(i64::MAX),
        c["exp"].as_i64().unwrap_or(0),
    );
    if now < nbf - 300 || now >= exp {
        let t = |x: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(x, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_default()
        };
        return Err(rejected(
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                t(now),
                t(nbf),
                t(exp)
            ),
        ));
    }
    let aud_ok = c["aud"].as_str().is_some_and(|a| {
        a.ends_with(&format!("/{tenant}/oauth2/v2.0/token"))
            || a.ends_with(&format!("/{tenant}/oauth2/token"))
    });
    if !aud_ok {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation. The audience is not this tenant's token endpoint.",
        ));
    }
    if c["iss"].as_str() != Some(cfg.client_id.as_str()) || c["sub"] != c["iss"] {
        return Err(rejected(
            50048,
            "Subject mismatches Issuer claim in the client assertion.",
        ));
    }
    Ok(())
}
