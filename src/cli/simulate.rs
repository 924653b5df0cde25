//! `mde-alerts simulate`: the Defender/Entra simulator alone, for trying configs and for
//! benchmarks with many tenants.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mde_alerts::error::Error;
use mde_sim as sim;

/// The command's options (see `simulate --help`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) port: u16,
    pub(crate) alerts: usize,
    pub(crate) fault_rate: f64,
    pub(crate) token_lifetime: u64,
    pub(crate) mutate_every: u64,
    /// 0: the one tenant; N: any GUID is a tenant, N of them numbered for configs.
    pub(crate) tenants: u64,
    pub(crate) alerts_per_tenant: usize,
    /// Where to write the N numbered tenants as `[[tenants]]` tables.
    pub(crate) write_tenants: Option<PathBuf>,
}

/// The env variable the printed and written configs read the client secret from.
const SECRET_ENV: &str = "MDE_ALERTS_CLIENT_SECRET";

pub(crate) async fn run(o: Options) -> Result<ExitCode, Error> {
    let many = o.tenants > 0;
    let cfg = sim::SimConfig {
        initial_alerts: o.alerts,
        token_lifetime: Duration::from_secs(o.token_lifetime),
        seed: rand::random(),
        hazards: sim::Hazards {
            fault_rate: o.fault_rate,
            ..Default::default()
        },
        tenants: if many {
            sim::TenantMode::Many {
                alerts_per_tenant: o.alerts_per_tenant,
            }
        } else {
            sim::TenantMode::One
        },
        ..Default::default()
    };
    let s = sim::Simulator::start(cfg.clone(), o.port)
        .await
        .map_err(Error::io(format!("cannot listen on 127.0.0.1:{}", o.port)))?;
    let url = s.url();
    let every = Duration::from_secs(o.mutate_every);
    let _mutator = (o.mutate_every > 0).then(|| s.spawn_mutator(every, 3, 1));
    // In many tenants, one in a hundred of those in use changes an alert and gains one.
    let per_tick = usize::try_from(o.tenants / 100)
        .unwrap_or(usize::MAX)
        .max(1);
    let _tenant_mutator = (many && o.mutate_every > 0)
        .then(|| s.spawn_tenant_mutator(every, sim::TenantPick::InUse(per_tick), 1, 1));
    if let Some(path) = &o.write_tenants {
        let text = tenant_tables(o.tenants, &cfg.client_id, &url);
        mde_alerts::export::atomic::write_atomic(path, 0o644, |f| {
            let mut w = std::io::BufWriter::new(f);
            w.write_all(text.as_bytes())?;
            w.flush()
        })
        .map_err(Error::io(format!("cannot write {}", path.display())))?;
    }
    if many {
        outln!(
            "Simulator listening on {url}: any GUID is a tenant of its own, with {} alerts made from the seed and its id (the tenant {} has {} alerts).\n\
             One multi-tenant app signs in to every tenant: client_id \"{}\", its secret in ${SECRET_ENV}:\n  export {SECRET_ENV}='{}'\n\
             The numbered tenants are tenant_id(i) = 5e1a7e0a-0000-4000-8000-<i in 12 digits>, i from 0 to {}: {} … {}.\n{}\n\
             A tenant in config form:\n\n{}\nCtrl-C stops it.",
            o.alerts_per_tenant,
            cfg.tenant_id,
            o.alerts,
            cfg.client_id,
            cfg.client_secret,
            o.tenants - 1,
            sim::tenant_id(0),
            sim::tenant_id(o.tenants - 1),
            match &o.write_tenants {
                Some(p) => format!(
                    "Wrote {} [[tenants]] tables to {} (a tenants_dir file, or paste them into a config).",
                    o.tenants,
                    p.display()
                ),
                None => "--write-tenants FILE writes them all as [[tenants]] tables.".to_owned(),
            },
            tenant_tables(1, &cfg.client_id, &url),
        )?;
    } else {
        outln!(
            "Simulator listening on {url} with {} alerts. Point a config at it:\n\n[[tenants]]\nname = \"sim\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"{SECRET_ENV}\"   # export {SECRET_ENV}='{}'\nlogin_url = \"{url}\"\napi_url = \"{url}\"\ngraph_url = \"{url}\"\n\nCtrl-C stops it.",
            o.alerts,
            cfg.tenant_id,
            cfg.client_id,
            cfg.client_secret,
        )?;
    }
    tokio::signal::ctrl_c().await.ok();
    Ok(ExitCode::SUCCESS)
}

/// `n` numbered tenants as `[[tenants]]` tables: `sim-00000` … with `tenant_id(i)`.
fn tenant_tables(n: u64, client_id: &str, url: &str) -> String {
    let mut out = String::new();
    for i in 0..n {
        let _ = writeln!(
            out,
            "[[tenants]]\nname = \"sim-{i:05}\"\ntenant_id = \"{}\"\nclient_id = \"{client_id}\"\nclient_secret_env = \"{SECRET_ENV}\"\nlogin_url = \"{url}\"\napi_url = \"{url}\"\ngraph_url = \"{url}\"\n",
            sim::tenant_id(i)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_tables_parse_as_tenants_with_distinct_names_and_ids() {
        let text = tenant_tables(3, sim::DEMO_CLIENT_ID, "http://127.0.0.1:1");
        let raw: mde_alerts::config::raw::RawConfig = toml::from_str(&text).unwrap();
        assert_eq!(raw.tenants.len(), 3);
        assert_eq!(raw.tenants[2].name.as_deref(), Some("sim-00002"));
        assert_eq!(
            raw.tenants[2].tenant_id.as_deref(),
            Some(sim::tenant_id(2).as_str())
        );
        assert_eq!(
            raw.tenants[0].client_secret_env.as_deref(),
            Some(SECRET_ENV)
        );
    }
}
