//! Defender for Endpoint's `GET /api/alerts`: OData query options, the bearer token's checks,
//! the quota, injected faults, and one page of alerts at a time while the world moves on.

// Helpers answer with an axum `Response` as their error: what every handler returns.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::clock::{defender_time, sim_now};
use crate::hazards::FaultKind;
use crate::odata::{Dialect, Property};
use crate::tenants::{TenantFault, read_floor};
use crate::truth::served;
use crate::{RESOURCE, Shared, SimConfig, World, odata};

fn defender_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "target": "43f4cb08-8fac-4b65-9db1-745c2ae65f3a"}});
    (status, axum::Json(body)).into_response()
}

pub(crate) async fn not_found() -> Response {
    defender_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "Resource not found",
    )
}

/// What to answer instead of the page.
enum Fault {
    TooMany(u64),
    Internal,
    Unavailable,
    Truncated,
    Garbage,
    Slow(Duration),
}

struct Query {
    filter: Option<odata::Expr>,
    top: usize,
    skip: usize,
    order: Option<(String, bool)>,
    expand: bool,
}

fn parse_query(raw: Option<&str>, orderby_ok: bool) -> Result<Query, Response> {
    let bad = |m: String| {
        defender_error(
            StatusCode::BAD_REQUEST,
            "ODataError",
            &format!("Invalid OData URI query: {m}"),
        )
    };
    let mut q = Query {
        filter: None,
        top: 10_000,
        skip: 0,
        order: None,
        expand: false,
    };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "$filter" => q.filter = Some(odata::parse_filter(&v).map_err(|e| bad(e.to_string()))?),
            "$top" => {
                let n: usize = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("$top '{v}' is not a number")))?;
                if n > 10_000 {
                    return Err(bad(format!(
                        "The limit of '10000' for Top query has been exceeded. The value from the incoming request is '{n}'."
                    )));
                }
                q.top = n;
            }
            "$skip" => {
                q.skip = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("$skip '{v}' is not a number")))?
            }
            "$expand" => {
                if v.trim().eq_ignore_ascii_case("evidence") {
                    q.expand = true;
                } else {
                    return Err(bad(format!(
                        "Could not find a property named '{v}' on type 'Alert'."
                    )));
                }
            }
            "$orderby" => {
                if !orderby_ok {
                    return Err(bad(
                        "The query parameter '$orderby' is not supported.".into()
                    ));
                }
                let mut parts = v.split_whitespace();
                let prop = parts.next().unwrap_or("").to_owned();
                let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(o) => return Err(bad(format!("'{o}' is not a sort direction"))),
                };
                let known = [
                    "lastUpdateTime",
                    "alertCreationTime",
                    "id",
                    "severity",
                    "status",
                ];
                let prop = known
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(&prop))
                    .ok_or_else(|| {
                        bad(format!(
                            "Could not find a property named '{prop}' on type 'Alert'."
                        ))
                    })?;
                q.order = Some(((*prop).to_owned(), desc));
            }
            other if other.starts_with('$') => {
                return Err(bad(format!(
                    "The query parameter '{other}' is not supported."
                )));
            }
            _ => {}
        }
    }
    Ok(q)
}

fn authorize(
    decoding: &jsonwebtoken::DecodingKey,
    st: &mut World,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let unauthorized = |st: &mut World| {
        st.stats.unauthorized += 1;
        let mut r = defender_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid Authorization header",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return Err(unauthorized(st));
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    v.validate_aud = false;
    let data = match jsonwebtoken::decode::<Value>(token, decoding, &v) {
        Ok(d) => d,
        Err(_) => return Err(unauthorized(st)),
    };
    if data.claims.get("aud").and_then(|a| a.as_str()) != Some(RESOURCE) {
        return Err(defender_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The token's audience is not https://api.securitycenter.microsoft.com.",
        ));
    }
    let roles_ok = data.claims["roles"].as_array().is_some_and(|r| {
        r.iter()
            .any(|x| matches!(x.as_str(), Some("Alert.Read.All" | "Alert.ReadWrite.All")))
    });
    let scp_ok = data.claims["scp"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|x| matches!(x, "Alert.Read" | "Alert.ReadWrite"))
    });
    if !roles_ok && !scp_ok {
        return Err(defender_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The application does not have any of the required application permissions (Alert.ReadWrite.All, Alert.Read.All) to access the resource.",
        ));
    }
    Ok(())
}

pub(crate) async fn alerts(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut held = s
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .alerts_held
        .subscribe();
    // The sender lives as long as the state: an error cannot happen while this handler runs.
    let _ = held.wait_for(|h| !*h).await;
    let (fault, answer) = {
        let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
        let key = st.token_tenant(&headers);
        let tenant_fault = st.tenants.fault(&key);
        // A read that changes nothing needs only the alerts its filter can match.
        let floor = (st.cfg.hazards.mutate_per_page == 0)
            .then(|| read_floor(raw.as_deref(), Dialect::Defender, Property::LastUpdateTime))
            .flatten();
        let served = st.with_world(&key, floor, |cfg, decoding, st| {
            st.stats.alert_calls += 1;
            let retired = match tenant_fault {
                Some(TenantFault::MdeRetired(r)) => Some(r),
                _ => cfg.mde_retired,
            };
            match retired {
                None => {}
                Some(crate::Retired::Gone) => {
                    return Err(defender_error(
                        StatusCode::GONE,
                        "Gone",
                        "This API has been retired. Use the Microsoft Graph security API (security/alerts_v2).",
                    ));
                }
                Some(crate::Retired::Forbidden) => {
                    return Err(defender_error(StatusCode::FORBIDDEN, "Forbidden", "Forbidden"));
                }
                Some(crate::Retired::Retired400) => {
                    return Err(defender_error(
                        StatusCode::BAD_REQUEST,
                        "ApiRetired",
                        "The Microsoft Defender for Endpoint API is no longer available.",
                    ));
                }
            }
            authorize(decoding, st, &headers)?;
            if let Some(TenantFault::Api(code)) = tenant_fault {
                st.stats.faults += 1;
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let name = status
                    .canonical_reason()
                    .unwrap_or("Error")
                    .replace(' ', "");
                return Err(defender_error(
                    status,
                    &name,
                    "This tenant fails on purpose (the simulator's set_tenant_fault).",
                ));
            }
            admit_and_page(cfg, st, raw.as_deref())
        });
        match served {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
    match fault {
        Some(Fault::TooMany(secs)) => {
            let mut r = defender_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "API calls quota exceeded. Retry in a bit.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Some(Fault::Internal) => {
            defender_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "")
        }
        Some(Fault::Unavailable) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
        }
        Some(Fault::Garbage) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Gateway hiccup</body></html>",
        )
            .into_response(),
        Some(Fault::Truncated) => match answer {
            Some(Ok(body)) => {
                let cut = body.len() / 2;
                ok_json(body[..cut].to_vec())
            }
            Some(Err(r)) => r,
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            match answer {
                Some(Ok(body)) => ok_json(body),
                Some(Err(r)) => r,
                None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        None => match answer {
            Some(Ok(body)) => ok_json(body),
            Some(Err(r)) => r,
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    }
}

type Answer = (Option<Fault>, Option<Result<Vec<u8>, Response>>);

/// The quota, an injected fault, then the page (unless the fault replaces it).
fn admit_and_page(cfg: &SimConfig, st: &mut World, raw: Option<&str>) -> Result<Answer, Response> {
    let h = &cfg.hazards;
    if let Some((per_minute, per_hour)) = h.rate_limit
        && let Some(wait) = quota_wait(&mut st.quota_calls, per_minute, per_hour)
    {
        st.stats.throttled += 1;
        let mut r = defender_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!("API calls quota exceeded! Maximum admitted {per_minute} per 1m."),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs_f64().ceil() as u64),
        );
        return Err(r);
    }
    let fault = h.draw_fault(&mut st.maker.rng).map(|kind| {
        st.stats.faults += 1;
        match kind {
            FaultKind::TooManyRequests => Fault::TooMany(h.retry_after_secs),
            FaultKind::Internal => Fault::Internal,
            FaultKind::Unavailable => Fault::Unavailable,
            FaultKind::Truncated => Fault::Truncated,
            FaultKind::NotJson => Fault::Garbage,
            FaultKind::Slow => Fault::Slow(h.slow_delay),
        }
    });
    let answer = match &fault {
        Some(Fault::TooMany(_) | Fault::Internal | Fault::Unavailable | Fault::Garbage) => None,
        _ => Some(page(cfg, st, raw)),
    };
    Ok((fault, answer))
}

/// Records a call against the quota, or says how long until one is allowed.
pub(crate) fn quota_wait(
    calls: &mut VecDeque<Instant>,
    per_minute: u32,
    per_hour: u32,
) -> Option<Duration> {
    let now = Instant::now();
    let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
    while calls
        .front()
        .is_some_and(|t| now.duration_since(*t) >= hour)
    {
        calls.pop_front();
    }
    let mut wait = Duration::ZERO;
    if calls.len() >= per_hour as usize {
        wait = wait.max(hour - now.duration_since(calls[calls.len() - per_hour as usize]));
    }
    let in_minute = calls
        .iter()
        .rev()
        .take_while(|t| now.duration_since(**t) < minute)
        .count();
    if in_minute >= per_minute as usize {
        wait = wait.max(minute - now.duration_since(calls[calls.len() - per_minute as usize]));
    }
    if wait.is_zero() {
        calls.push_back(now);
        None
    } else {
        Some(wait)
    }
}

pub(crate) fn ok_json(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8",
            ),
            (header::HeaderName::from_static("odata-version"), "4.0"),
        ],
        body,
    )
        .into_response()
}

/// Builds one page, then lets the world move on (`mutate_per_page`).
fn page(cfg: &SimConfig, st: &mut World, raw: Option<&str>) -> Result<Vec<u8>, Response> {
    let h = &cfg.hazards;
    let mut q = parse_query(raw, h.orderby_supported)?;
    if h.orderby_ignored {
        q.order = None;
    }
    let now = Instant::now();
    let mut hits: Vec<(i64, &String, &Map<String, Value>)> = st
        .alerts
        .iter()
        .filter_map(|(id, versions)| {
            let v = versions.iter().rev().find(|v| v.visible_at <= now)?;
            q.filter
                .as_ref()
                .is_none_or(|f| f.matches(&v.json))
                .then_some((v.ticks, id, &v.json))
        })
        .collect();
    // Without $orderby the order is undocumented: here, by id, which has nothing to do with time.
    if let Some((prop, desc)) = &q.order {
        if prop == "lastUpdateTime" {
            hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        } else {
            hits.sort_by(|a, b| {
                let ka = a.2.get(prop).map(|v| v.to_string()).unwrap_or_default();
                let kb = b.2.get(prop).map(|v| v.to_string()).unwrap_or_default();
                ka.cmp(&kb).then_with(|| a.1.cmp(b.1))
            });
        }
        if *desc {
            hits.reverse();
        }
    }
    let take = h.server_page.map_or(q.top, |p| p.min(q.top));
    let more = hits.len() > q.skip + take && take < q.top;
    let mut value: Vec<Value> = hits
        .iter()
        .skip(q.skip)
        .take(take)
        .map(|(_, _, j)| Value::Object(served(j, q.expand)))
        .collect();
    let add_invalid = h.invalid_element_rate > 0.0
        && !value.is_empty()
        && st
            .maker
            .rng
            .random_bool(h.invalid_element_rate.clamp(0.0, 1.0));
    if add_invalid {
        let junk = if st.maker.rng.random_bool(0.5) {
            json!({"title": "an element without an id", "lastUpdateTime": defender_time(sim_now())})
        } else {
            json!({"id": "da-broken-time_1", "lastUpdateTime": "not a time"})
        };
        let at = st.maker.rng.random_range(0..value.len());
        value.insert(at, junk);
        // Keep the page within $top, as the real service would.
        if value.len() > q.top {
            value.pop();
        }
    }
    let mut envelope = json!({
        "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Alerts",
        "value": value,
    });
    if more {
        envelope["@odata.nextLink"] = Value::from(format!(
            "https://api.securitycenter.microsoft.com/api/alerts?$skip={}",
            q.skip + take
        ));
    }
    let body = serde_json::to_vec(&envelope)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
    if h.mutate_per_page > 0 {
        st.update_random(cfg, h.mutate_per_page);
    }
    Ok(body)
}
