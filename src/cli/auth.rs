//! `mde-alerts auth check`: sign in, explain the token's claims, probe the API; exit 0 only if a
//! poll would work.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::auth_check;
use mde_alerts::config::SourceKind;
use mde_alerts::error::Error;

pub(crate) async fn run(
    config: &Path,
    tenant: Option<&str>,
    show_token: bool,
) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    let reports = auth_check::auth_check(&config, tenant, show_token).await?;
    let mut all_ok = true;
    for (name, r) in &reports {
        match r {
            Err(e) => {
                all_ok = false;
                outln!("tenant {name}: sign-in FAILED\n  {e}")?;
                if let Some(fix) = e.hint() {
                    outln!("  fix: {fix}")?;
                }
            }
            Ok(r) => {
                all_ok &= r.ok();
                print_auth(r)?;
            }
        }
    }
    // A warning tenants share (the same situation, the same fix) is said once, naming them.
    let groups = super::group(reports.iter().filter_map(|(name, r)| {
        let r = r.as_ref().ok()?;
        let w =
            mde_alerts::source::route::mde_warning(r.choice, Some(r.source), Some(r.why.code()))?;
        Some((name.as_str(), w))
    }));
    for (w, names) in &groups {
        outln!(
            "warning ({} {}): {w}\n  fix: {}",
            if names.len() == 1 {
                "tenant"
            } else {
                "tenants"
            },
            super::tenant_list(names),
            w.fix
        )?;
    }
    for (_, r) in &reports {
        if let Ok(auth_check::AuthReport {
            raw_token: Some(t), ..
        }) = r
        {
            errln!(
                "warning: the next line is a live access token to your Defender alerts; do not paste it anywhere you would not paste a password"
            );
            outln!("{t}")?;
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        super::failed()
    })
}

fn print_auth(r: &auth_check::AuthReport) -> Result<(), Error> {
    outln!("tenant {}: signed in with {}", r.tenant, r.grant)?;
    if !r.claims_readable {
        // An opaque token (not a JWT): its claims cannot be read here, only the API can judge it.
        outln!(
            "  claims            cannot be read: the token is opaque (not a JWT), so its audience and permissions are judged by the API probe alone"
        )?;
    } else {
        print_claims(r)?;
    }
    if let Some((subject, not_after)) = &r.certificate {
        outln!(
            "  certificate       {subject}, expires {}",
            not_after.format("%Y-%m-%d")
        )?;
    }
    match &r.probe {
        Ok(()) => outln!("  API probe         {}  [ok]", r.probe_request)?,
        Err(e) => {
            outln!("  API probe         {}  [PROBLEM] {e}", r.probe_request)?;
            if let Some(fix) = e.hint() {
                outln!("  fix               {fix}")?;
            }
        }
    }
    outln!(
        "  reads             {} (source = {}: {})",
        r.source.title(),
        r.choice.as_str(),
        r.why
    )?;

    outln!(
        "  verdict           {}",
        if r.ok() {
            "a poll would work"
        } else {
            "a poll would NOT work"
        }
    )?;
    Ok(())
}

fn print_claims(r: &auth_check::AuthReport) -> Result<(), Error> {
    let c = &r.claims;
    let s = |k: &str| c[k].as_str().unwrap_or("(absent)").to_owned();
    let mark = |ok: bool| if ok { "ok" } else { "PROBLEM" };
    outln!("  tenant (tid)      {}", s("tid"))?;
    outln!(
        "  app (appid)       {}",
        c["appid"]
            .as_str()
            .or(c["azp"].as_str())
            .unwrap_or("(absent)")
    )?;
    if let Some(upn) = c["upn"].as_str() {
        outln!("  user (upn)        {upn}")?;
    }
    outln!("  issuer (iss)      {}", s("iss"))?;
    outln!(
        "  audience (aud)    {}  [{}]{}",
        s("aud"),
        mark(r.audience_ok),
        if r.audience_ok {
            String::new()
        } else {
            format!(
                " — {} needs a token for {}; another audience gets 401 or 403",
                match r.source {
                    SourceKind::Mde => "Defender for Endpoint",
                    SourceKind::Graph => "Microsoft Graph",
                },
                r.audience
            )
        }
    )?;
    let expiry = c["exp"]
        .as_i64()
        .and_then(|e| chrono::DateTime::<chrono::Utc>::from_timestamp(e, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "(absent)".into());
    outln!(
        "  expires           {expiry} (in {} min)",
        r.expires_in_secs / 60
    )?;
    let kind = if c["scp"].is_string() {
        "delegated (scp)"
    } else {
        "application (roles)"
    };
    outln!(
        "  permissions       {kind}: {}  [{}]",
        if r.permissions.is_empty() {
            "(none)".into()
        } else {
            r.permissions.join(", ")
        },
        mark(r.permission_ok),
    )?;
    if !r.permission_ok {
        let fix = match r.source {
            SourceKind::Mde => {
                "grant the WindowsDefenderATP permission Alert.Read.All (application) or Alert.Read (delegated), with admin consent"
            }
            SourceKind::Graph => mde_alerts::source::graph::GRANT,
        };
        outln!("  fix               {fix}")?;
    }
    Ok(())
}
