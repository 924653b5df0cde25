//! `mde-alerts simulate`: the Defender/Entra simulator alone, for trying configs.

use std::process::ExitCode;
use std::time::Duration;

use mde_alerts::error::Error;
use mde_sim as sim;

pub async fn run(
    port: u16,
    alerts: usize,
    fault_rate: f64,
    token_lifetime: u64,
    mutate_every: u64,
) -> Result<ExitCode, Error> {
    let cfg = sim::SimConfig {
        initial_alerts: alerts,
        token_lifetime: Duration::from_secs(token_lifetime),
        seed: rand::random(),
        hazards: sim::Hazards {
            fault_rate,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = sim::Simulator::start(cfg.clone(), port)
        .await
        .map_err(Error::io(format!("cannot listen on 127.0.0.1:{port}")))?;
    let _mutator =
        (mutate_every > 0).then(|| s.spawn_mutator(Duration::from_secs(mutate_every), 3, 1));
    outln!(
        "Simulator listening on {url} with {alerts} alerts. Point a config at it:\n\n[[tenants]]\nname = \"sim\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"MDE_ALERTS_CLIENT_SECRET\"   # export MDE_ALERTS_CLIENT_SECRET='{}'\nlogin_url = \"{url}\"\napi_url = \"{url}\"\n\nCtrl-C stops it.",
        cfg.tenant_id,
        cfg.client_id,
        cfg.client_secret,
        url = s.url()
    )?;
    tokio::signal::ctrl_c().await.ok();
    Ok(ExitCode::SUCCESS)
}
