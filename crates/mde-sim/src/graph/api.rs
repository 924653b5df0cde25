//! `GET /v1.0/security/alerts_v2` (and `…/alerts_v2/{id}`): Graph's token checks, query options,
//! server-driven paging with `@odata.nextLink`, evolvable enums, Graph's error bodies, and the
//! shared hazards.

// Helpers answer with an axum `Response` as their error: what every handler returns.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::view::{CachedView, mask_unknown_enums};
use super::world::is_mde_only;
use super::{GRAPH_ROOTS, GraphOrderBy};
use crate::clock::{defender_time, sim_now};
use crate::defender::quota_wait;
use crate::hazards::{FaultKind, Hazards};
use crate::odata::{Dialect, Property};
use crate::tenants::{TenantFault, read_floor};
use crate::{Shared, SimConfig, World};

/// The roles (or delegated scopes) that let a caller list alerts.
const READ_ROLES: [&str; 2] = ["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"];

/// Graph's page size when `$top` is absent.
const DEFAULT_TOP: usize = 100;
/// The largest `$top` and `$skip` Graph's security API accepts.
const MAX_TOP: usize = 1000;
const MAX_SKIP: usize = 500;

fn request_id(headers: &HeaderMap, w: &mut World) -> (String, String) {
    let n: u64 = w.graph_maker.rng.random();
    let rid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n >> 32,
        (n >> 16) & 0xffff,
        n & 0xfff,
        (n >> 20) & 0xfff,
        n & 0xffff_ffff_ffff
    );
    let client = headers
        .get("client-request-id")
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| rid.clone(), str::to_owned);
    (rid, client)
}

/// Graph's error body, on every error: `{"error":{"code","message","innerError":{…}}}`.
pub(crate) fn graph_error(
    status: StatusCode,
    code: &str,
    message: &str,
    ids: &(String, String),
) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": ids.0,
            "client-request-id": ids.1,
        }
    }});
    let mut r = (status, axum::Json(body)).into_response();
    add_ids(&mut r, ids);
    r
}

fn add_ids(r: &mut Response, ids: &(String, String)) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ids.0) {
        h.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.1) {
        h.insert("client-request-id", v);
    }
}

/// Signature, expiry, audience (a Graph root), then the role.
fn authorize(
    cfg: &SimConfig,
    decoding: &jsonwebtoken::DecodingKey,
    st: &mut World,
    headers: &HeaderMap,
    ids: &(String, String),
) -> Result<(), Response> {
    let unauthorized = |st: &mut World, message: &str| {
        st.stats.graph_unauthorized += 1;
        let mut r = graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
            ids,
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            ),
        );
        r
    };
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Err(unauthorized(st, "Access token is empty."));
    };
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return Err(unauthorized(st, "Access token is empty."));
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    v.validate_aud = false;
    v.validate_exp = false;
    let Ok(data) = jsonwebtoken::decode::<Value>(token, decoding, &v) else {
        return Err(unauthorized(
            st,
            "IDX14100: JWT is not well formed or its signature is invalid.",
        ));
    };
    let c = data.claims;
    if c["exp"]
        .as_i64()
        .is_none_or(|e| e <= chrono::Utc::now().timestamp())
    {
        return Err(unauthorized(
            st,
            "Lifetime validation failed, the token is expired.",
        ));
    }
    let aud = c["aud"].as_str().unwrap_or("").trim_end_matches('/');
    let aud_ok = match &cfg.graph_audience {
        Some(root) => aud.eq_ignore_ascii_case(root.trim_end_matches('/')),
        None => GRAPH_ROOTS.iter().any(|r| aud.eq_ignore_ascii_case(r)),
    };
    if !aud_ok {
        return Err(unauthorized(
            st,
            "Access token validation failure. Invalid audience.",
        ));
    }
    let roles_ok = c["roles"].as_array().is_some_and(|r| {
        r.iter()
            .any(|x| x.as_str().is_some_and(|x| READ_ROLES.contains(&x)))
    });
    let scp_ok = c["scp"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|x| READ_ROLES.contains(&x)));
    if !roles_ok && !scp_ok {
        st.stats.graph_forbidden += 1;
        let message = if c.get("scp").is_some() {
            "Missing scope permissions on the request. API requires one of 'SecurityAlert.Read.All, SecurityAlert.ReadWrite.All'. Scopes on the request 'openid'"
        } else {
            "Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All. API acceptable roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All. Roles on the request ''."
        };
        return Err(graph_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            message,
            ids,
        ));
    }
    Ok(())
}

/// Which instant a page is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Created,
    Updated,
}

impl Key {
    fn field(self) -> &'static str {
        match self {
            Key::Created => "createdDateTime",
            Key::Updated => "lastUpdateDateTime",
        }
    }
}

/// Where the next page starts: after `(ticks, id)` in the order `(key, desc)`.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    key: Key,
    desc: bool,
    ticks: i64,
    id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        let j = json!({"k": self.key.field(), "d": self.desc, "t": self.ticks, "i": self.id});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j.to_string())
    }

    fn decode(s: &str) -> Option<Cursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()?;
        let j: Value = serde_json::from_slice(&bytes).ok()?;
        let key = match j["k"].as_str()? {
            "createdDateTime" => Key::Created,
            "lastUpdateDateTime" => Key::Updated,
            _ => return None,
        };
        Some(Cursor {
            key,
            desc: j["d"].as_bool()?,
            ticks: j["t"].as_i64()?,
            id: j["i"].as_str()?.to_owned(),
        })
    }
}

struct Query {
    filter: Option<crate::odata::Expr>,
    top: usize,
    skip: usize,
    count: bool,
    order: (Key, bool),
    cursor: Option<Cursor>,
    /// The options as sent, for the next link (without `$skip` and `$skiptoken`).
    keep: Vec<(String, String)>,
}

fn parse_query(raw: Option<&str>, h: &Hazards) -> Result<Query, (&'static str, String)> {
    let orderby = h.graph_orderby;
    let bad = |m: String| ("BadRequest", m);
    let mut q = Query {
        filter: None,
        top: DEFAULT_TOP,
        skip: 0,
        count: false,
        // Newest first when the caller says nothing (the documented default).
        order: (Key::Created, true),
        cursor: None,
        keep: Vec::new(),
    };
    let number = |k: &str, v: &str| -> Result<usize, (&'static str, String)> {
        v.trim().parse::<usize>().map_err(|_| {
            bad(format!(
                "Invalid value '{v}' for query option '{k}': a non-negative integer is required."
            ))
        })
    };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let name = k.trim_start_matches('$').to_ascii_lowercase();
        let dollar = k.starts_with('$');
        match name.as_str() {
            "filter" => {
                let e = crate::odata::parse_filter_in(&v, crate::odata::Dialect::Graph)
                    .map_err(|e| bad(format!("Invalid filter clause: {e}")))?;
                if h.graph_null_refused && e.compares_null() {
                    return Err(bad(
                        "Invalid filter clause: comparisons with null are not supported.".into(),
                    ));
                }
                q.filter = Some(e);
            }
            "top" => {
                let n = number("$top", &v)?;
                if n > MAX_TOP {
                    return Err(bad(format!(
                        "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{n}'."
                    )));
                }
                q.top = n;
            }
            "skip" => {
                let n = number("$skip", &v)?;
                if n > MAX_SKIP {
                    return Err(bad(format!(
                        "The limit of '{MAX_SKIP}' for Skip query has been exceeded. The value from the incoming request is '{n}'."
                    )));
                }
                q.skip = n;
                continue;
            }
            "count" => {
                q.count = match v.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(bad(format!(
                            "Invalid value '{v}' for query option '$count'."
                        )));
                    }
                }
            }
            "orderby" => match orderby {
                GraphOrderBy::Refused => return Err(bad("$orderby is not supported".into())),
                GraphOrderBy::Ignored => {}
                GraphOrderBy::Supported => q.order = parse_orderby(&v).map_err(bad)?,
            },
            "skiptoken" => {
                q.cursor = Some(
                    Cursor::decode(&v).ok_or_else(|| bad("The skip token is not valid.".into()))?,
                );
                continue;
            }
            _ if dollar => {
                return Err(bad(format!(
                    "Query option '{k}' is not allowed. To get the list of allowed options, see the documentation of security/alerts_v2."
                )));
            }
            _ => {}
        }
        q.keep.push((k.into_owned(), v.into_owned()));
    }
    Ok(q)
}

fn parse_orderby(v: &str) -> Result<(Key, bool), String> {
    let clauses: Vec<&str> = v.split(',').map(str::trim).collect();
    if clauses.len() != 1 {
        return Err(format!(
            "Sorting by more than one property is not supported: '{v}'."
        ));
    }
    let mut parts = clauses[0].split_whitespace();
    let prop = parts.next().unwrap_or("");
    let key = if prop.eq_ignore_ascii_case("lastUpdateDateTime") {
        Key::Updated
    } else if prop.eq_ignore_ascii_case("createdDateTime") {
        Key::Created
    } else {
        return Err(format!(
            "Sorting by '{prop}' is not supported; use lastUpdateDateTime or createdDateTime."
        ));
    };
    let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => return Err(format!("'{o}' is not a sort direction.")),
    };
    if parts.next().is_some() {
        return Err(format!("Invalid $orderby '{v}'."));
    }
    Ok((key, desc))
}

/// Whether the request asked for enum members newer than the documented ones.
fn wants_unknown_members(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|h| {
        h.to_str().is_ok_and(|s| {
            s.split(',').any(|p| {
                p.trim()
                    .eq_ignore_ascii_case("include-unknown-enum-members")
            })
        })
    })
}

fn ok_json(body: Vec<u8>, ids: &(String, String), prefer: bool) -> Response {
    let mut r = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
            ),
            (header::HeaderName::from_static("odata-version"), "4.0"),
        ],
        body,
    )
        .into_response();
    add_ids(&mut r, ids);
    if prefer {
        r.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("include-unknown-enum-members"),
        );
    }
    r
}

/// The Graph view of every alert Graph returns, latest visible version: `(ticks of its version,
/// cached view)`. Views are built once per version ([`crate::Version::view`]).
pub(crate) fn visible_views(
    w: &World,
    mde_only_share: f64,
    now: Instant,
) -> Vec<(i64, &CachedView)> {
    let endpoint = w
        .alerts
        .iter()
        .filter(|(id, _)| !is_mde_only(id, mde_only_share));
    endpoint
        .chain(w.graph_alerts.iter())
        .filter_map(|(_, versions)| {
            let v = versions.iter().rev().find(|v| v.visible_at <= now)?;
            Some((v.ticks, v.view.get_or_init(|| CachedView::of(&v.json))))
        })
        .collect()
}

fn instant_of(g: &CachedView, key: Key) -> i64 {
    match key {
        Key::Created => g.created,
        Key::Updated => g.updated,
    }
}

fn id_of(g: &Map<String, Value>) -> &str {
    g.get("id").and_then(Value::as_str).unwrap_or("")
}

/// One page of the query, as a body, then the world moves on (`mutate_per_page`).
fn page(
    cfg: &SimConfig,
    st: &mut World,
    raw: Option<&str>,
    host: &str,
    prefer: bool,
) -> Result<Vec<u8>, (&'static str, String)> {
    let h = cfg.alerts_v2_hazards();
    let q = parse_query(raw, &h)?;
    let (key, desc) = match (&q.cursor, h.graph_orderby) {
        (Some(c), _) => (c.key, c.desc),
        (None, GraphOrderBy::Ignored) => (Key::Created, true),
        (None, _) => q.order,
    };
    let mut hits: Vec<(i64, &Map<String, Value>)> =
        visible_views(st, cfg.mde_only_share, Instant::now())
            .into_iter()
            .filter(|(_, g)| q.filter.as_ref().is_none_or(|f| f.matches(&g.map)))
            .map(|(_, g)| (instant_of(g, key), &g.map))
            .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| id_of(a.1).cmp(id_of(b.1))));
    if desc {
        hits.reverse();
    }
    let total = hits.len();
    let start = match &q.cursor {
        Some(c) => hits
            .iter()
            .position(|(t, g)| {
                let ord = t.cmp(&c.ticks).then_with(|| id_of(g).cmp(c.id.as_str()));
                if desc { ord.is_lt() } else { ord.is_gt() }
            })
            .unwrap_or(total),
        None => q.skip.min(total),
    };
    let take = h.server_page.map_or(q.top, |p| p.max(1).min(q.top));
    let end = (start + take).min(total);
    let more = end < total && take > 0;
    let mut value: Vec<Value> = hits[start..end]
        .iter()
        .map(|(_, g)| {
            let mut v = Value::Object((*g).clone());
            if !prefer {
                mask_unknown_enums(&mut v);
            }
            v
        })
        .collect();
    let next = more.then(|| {
        let (t, g) = &hits[end - 1];
        let cursor = Cursor {
            key,
            desc,
            ticks: *t,
            id: id_of(g).to_owned(),
        };
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &q.keep {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &cursor.encode());
        let base = if h.graph_foreign_next_link {
            h.graph_foreign_host
                .clone()
                .unwrap_or_else(|| "https://evil.example".into())
        } else {
            format!("http://{host}")
        };
        format!(
            "{}/v1.0/security/alerts_v2?{}",
            base.trim_end_matches('/'),
            ser.finish()
        )
    });
    if h.invalid_element_rate > 0.0
        && !value.is_empty()
        && st
            .graph_maker
            .rng
            .random_bool(h.invalid_element_rate.clamp(0.0, 1.0))
    {
        let junk = if st.graph_maker.rng.random_bool(0.5) {
            json!({"title": "an element without an id", "lastUpdateDateTime": defender_time(sim_now())})
        } else {
            json!({"id": "fa-broken-time", "lastUpdateDateTime": "not a time", "serviceSource": "microsoftDefenderForEndpoint"})
        };
        let at = st.graph_maker.rng.random_range(0..value.len());
        value.insert(at, junk);
        if value.len() > q.top {
            value.pop();
        }
    }
    let mut envelope = Map::new();
    envelope.insert(
        "@odata.context".into(),
        Value::from("https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2"),
    );
    if q.count {
        envelope.insert("@odata.count".into(), Value::from(total));
    }
    if let Some(n) = next {
        envelope.insert("@odata.nextLink".into(), Value::from(n));
    }
    envelope.insert("value".into(), Value::Array(value));
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    if h.mutate_per_page > 0 {
        st.update_random(cfg, h.mutate_per_page);
    }
    Ok(body)
}

/// What to answer instead of the page.
enum Fault {
    TooMany(u64),
    Internal,
    Unavailable,
    Truncated,
    Garbage,
    Slow(std::time::Duration),
}

/// The checks and hazards every alerts_v2 call goes through before its answer: counting, the
/// token, the quota, an injected fault. `Err` is the answer.
fn admit(
    cfg: &SimConfig,
    decoding: &jsonwebtoken::DecodingKey,
    st: &mut World,
    headers: &HeaderMap,
    ids: &(String, String),
    tenant_fault: Option<TenantFault>,
) -> Result<Option<Fault>, Response> {
    st.stats.graph_calls += 1;
    authorize(cfg, decoding, st, headers, ids)?;
    if let Some(TenantFault::Api(code)) = tenant_fault {
        st.stats.graph_faults += 1;
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let name = status
            .canonical_reason()
            .unwrap_or("Error")
            .replace(' ', "");
        return Err(graph_error(
            status,
            &name,
            "This tenant fails on purpose (the simulator's set_tenant_fault).",
            ids,
        ));
    }
    let h = cfg.alerts_v2_hazards();
    if let Some((per_minute, per_hour)) = h.rate_limit
        && let Some(wait) = quota_wait(&mut st.graph_quota_calls, per_minute, per_hour)
    {
        st.stats.graph_throttled += 1;
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please retry after the time indicated in the Retry-After header.",
            ids,
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs_f64().ceil() as u64),
        );
        return Err(r);
    }
    Ok(h.draw_fault(&mut st.graph_maker.rng).map(|kind| {
        st.stats.graph_faults += 1;
        match kind {
            FaultKind::TooManyRequests => Fault::TooMany(h.retry_after_secs),
            FaultKind::Internal => Fault::Internal,
            FaultKind::Unavailable => Fault::Unavailable,
            FaultKind::Truncated => Fault::Truncated,
            FaultKind::NotJson => Fault::Garbage,
            FaultKind::Slow => Fault::Slow(h.slow_delay),
        }
    }))
}

/// Turns the fault and the answer into the response.
async fn deliver(
    fault: Option<Fault>,
    answer: Result<Vec<u8>, Response>,
    ids: &(String, String),
    prefer: bool,
) -> Response {
    let body = match fault {
        Some(Fault::TooMany(secs)) => {
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Please retry after the time indicated in the Retry-After header.",
                ids,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
        Some(Fault::Internal) => {
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal server error occurred.",
                ids,
            );
        }
        Some(Fault::Unavailable) => {
            return graph_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please try again later.",
                ids,
            );
        }
        Some(Fault::Garbage) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Gateway hiccup</body></html>",
            )
                .into_response();
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            answer
        }
        Some(Fault::Truncated) => answer.map(|b| b[..b.len() / 2].to_vec()),
        None => answer,
    };
    match body {
        Ok(b) => ok_json(b, ids, prefer),
        Err(r) => r,
    }
}

/// `GET /v1.0/security/alerts_v2`.
pub(crate) async fn alerts_v2(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let prefer = wants_unknown_members(&headers);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let (ids, fault, answer) = {
        let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
        let key = st.token_tenant(&headers);
        let tenant_fault = st.tenants.fault(&key);
        // A read that changes nothing needs only the alerts its filter can match.
        let floor = (st.cfg.alerts_v2_hazards().mutate_per_page == 0)
            .then(|| read_floor(raw.as_deref(), Dialect::Graph, Property::LastUpdateDateTime))
            .flatten();
        let served = st.with_world(&key, floor, |cfg, decoding, st| {
            let ids = request_id(&headers, st);
            let fault = admit(cfg, decoding, st, &headers, &ids, tenant_fault)?;
            if !prefer {
                st.stats.graph_without_prefer += 1;
            }
            let answer = match &fault {
                Some(Fault::TooMany(_) | Fault::Internal | Fault::Unavailable | Fault::Garbage) => {
                    Ok(Vec::new())
                }
                _ => page(cfg, st, raw.as_deref(), &host, prefer)
                    .map_err(|(code, m)| graph_error(StatusCode::BAD_REQUEST, code, &m, &ids)),
            };
            Ok((ids, fault, answer))
        });
        match served {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
    deliver(fault, answer, &ids, prefer).await
}

/// `GET /v1.0/security/alerts_v2/{id}`: one alert, or 404 `NotFound`.
pub(crate) async fn alert_v2(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let prefer = wants_unknown_members(&headers);
    let (ids, fault, answer) = {
        let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
        let key = st.token_tenant(&headers);
        let tenant_fault = st.tenants.fault(&key);
        let served = st.with_world(&key, None, |cfg, decoding, st| {
            let ids = request_id(&headers, st);
            let fault = admit(cfg, decoding, st, &headers, &ids, tenant_fault)?;
            if !prefer {
                st.stats.graph_without_prefer += 1;
            }
            let answer = one_alert(cfg, st, &id, prefer, &ids);
            Ok((ids, fault, answer))
        });
        match served {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
    deliver(fault, answer, &ids, prefer).await
}

/// The body of `…/alerts_v2/{id}`, or 404.
fn one_alert(
    cfg: &SimConfig,
    st: &World,
    id: &str,
    prefer: bool,
    ids: &(String, String),
) -> Result<Vec<u8>, Response> {
    let found = visible_views(st, cfg.mde_only_share, Instant::now())
        .into_iter()
        .find(|(_, g)| id_of(&g.map) == id);
    match found {
        Some((_, g)) => {
            let mut v = Value::Object(g.map.clone());
            if !prefer {
                mask_unknown_enums(&mut v);
            }
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "@odata.context".into(),
                    Value::from(
                        "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2/$entity",
                    ),
                );
            }
            Ok(serde_json::to_vec(&v).unwrap_or_default())
        }
        None => Err(graph_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Alert with id '{id}' was not found."),
            ids,
        )),
    }
}
