//! The README's install path, followed literally: one `config.toml` that signs in by hand (the
//! environment) and under the unit (the systemd credential), and `config check` run as root
//! warning about what the service's user cannot read or write.

use std::os::unix::fs::PermissionsExt;

use crate::support::*;
use mde_sim::Hazards;

/// A config whose tenant names no secret key, as the README's Configure step writes it.
async fn without_secret_keys() -> Env {
    let env = Env::new(sim_config(10, 81, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| c.tenants[0].client_secret_file = None);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_config_signs_in_by_hand_and_under_the_unit() {
    let env = without_secret_keys().await;
    let secret = mde_sim::DEMO_CLIENT_SECRET;
    // By hand: `sudo -u mde-alerts MDE_ALERTS_CLIENT_SECRET=… mde-alerts auth check`.
    let out = run_with(&env, &["auth", "check"], |c| {
        c.env("MDE_ALERTS_CLIENT_SECRET", secret)
            .env_remove("CREDENTIALS_DIRECTORY");
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // Under the unit: the credential, and no variable.
    let creds = env.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("client_secret"), format!("{secret}\n")).unwrap();
    std::fs::set_permissions(
        creds.join("client_secret"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    let out = run_with(&env, &["poll"], |c| {
        c.env("CREDENTIALS_DIRECTORY", &creds)
            .env_remove("MDE_ALERTS_CLIENT_SECRET");
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // Neither: a configuration error that says both ways.
    let out = run_with(&env, &["auth", "check"], |c| {
        c.env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("MDE_ALERTS_CLIENT_SECRET");
    })
    .await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no client secret is configured"), "{t}");
    assert!(t.contains("export MDE_ALERTS_CLIENT_SECRET="), "{t}");
    assert!(t.contains("LoadCredential="), "{t}");
    assert!(!t.contains(secret), "{t}");
}

/// `config check` as root passed with a root-owned 0600 secret file, and the service, running as
/// its own user, then failed to sign in. It now warns, naming the key, the owner and the mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_warns_what_the_service_user_cannot_read() {
    let Ok(Some(_)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("no user `nobody` on this machine: nothing to check as another user");
        return;
    };
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: the files below are this user's, and `nobody` is not it either way");
    }
    let env = Env::new(sim_config(5, 82, Hazards::default()), Opts::default()).await;
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = env.path().join("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_with(&env, &["config", "check"], |c| {
        c.env("MDE_ALERTS_SERVICE_USER", "nobody");
    })
    .await;
    let t = text(&out);
    assert!(out.status.success(), "warnings, not errors: {t}");
    let mut lines = t.lines();
    let line = lines
        .find(|l| l.contains("tenants[0].client_secret_file"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(line.contains("the service's user nobody"), "{line}");
    assert!(line.contains("cannot read"), "{line}");
    assert!(line.contains("mode 0600"), "{line}");
    // The fix on the next line, said once.
    let fix = lines.next().unwrap_or_default();
    assert!(
        fix.starts_with("  fix: ") && fix.contains("LoadCredential="),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains("store.path") && l.contains("cannot create files in")),
        "the store's directory is not the service user's: {t}"
    );
    // Readable by all: nothing to say about the secret.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_with(&env, &["config", "check"], |c| {
        c.env("MDE_ALERTS_SERVICE_USER", "nobody");
    })
    .await;
    assert!(
        !text(&out).contains("client_secret_file: the service's user"),
        "{}",
        text(&out)
    );
}
