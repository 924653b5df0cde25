//! The many-tenant simulator through the real binary: a config of numbered tenants (the
//! support layer's `Env::many_tenants`) polls each tenant's own world, and one tenant's
//! failure on purpose is its own.

use mde_sim::{TenantFault, tenant_id};

use crate::support::{Env, Opts, run, stored};

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The second of three tenants fails on purpose; the other two store their own worlds. Its API
/// refuses it (403), a failure no retry clears, so the poll does not wait out the backoff a 5xx
/// earns (the retries are `poll.rs`'s to test).
#[tokio::test]
async fn a_poll_of_numbered_tenants_stores_each_tenants_world_once() {
    let env = Env::many_tenants(6, 3, 11, Opts::default()).await;
    env.sim
        .set_tenant_fault(&tenant_id(1), Some(TenantFault::Api(403)));
    let out = run(&env, &["poll"]).await;
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("sim-0001"), "{text}");

    let store = stored(&env.store_path());
    for i in [0, 2] {
        for t in env.sim.tenant_truth(&tenant_id(i), false) {
            let (_, json) = store
                .get(&t.id)
                .unwrap_or_else(|| panic!("{} missing", t.id));
            assert_eq!(json, &t.json);
        }
    }
    assert_eq!(store.len(), 12, "only the two healthy tenants' alerts");
    assert!(env.sim.tenant_stats(&tenant_id(1)).faults >= 1);
    // The home tenant is not in this config: nothing asked for it.
    assert_eq!(
        env.sim.tenant_stats(mde_sim::DEMO_TENANT_ID).token_requests,
        0
    );
}
