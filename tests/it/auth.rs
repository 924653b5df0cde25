//! Sign-in for every kind of tenant, against the simulator: each grant works, each Entra error a
//! user meets is shown with its AADSTS code and what to do, bad credential files exit 78 naming
//! the key, and no secret, password, key or token leaks anywhere.

use std::path::{Path, PathBuf};

use crate::support::*;
use mde_sim::{DEMO_CLIENT_ID, DEMO_PASSWORD, DEMO_TENANT_ID, DEMO_USER, Hazards, SimConfig};

/// A self-signed RSA certificate valid from `from_days` to `to_days` relative to today.
struct Cert {
    cert_pem: String,
    key_pem: String,
}

fn make_cert(from_days: i64, to_days: i64) -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["mde-alerts.contoso.example".into()]).unwrap();
    let now = time_now();
    params.not_before = now + rcgen_days(from_days);
    params.not_after = now + rcgen_days(to_days);
    let cert = params.self_signed(&key).unwrap();
    Cert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_days(d: i64) -> time::Duration {
    time::Duration::days(d)
}

/// A simulator whose app has `cert` registered.
async fn env_trusting(cert: &Cert, opts: Opts) -> Env {
    let pem = cert.cert_pem.clone();
    Env::new(sim_with(|c| c.identity.certificate_pem = Some(pem)), opts).await
}

fn sim_with(identity: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut c = sim_config(40, 21, Hazards::default());
    identity(&mut c);
    c
}

/// Writes a config whose tenant block signs in with `auth` (TOML lines).
fn write_config(env: &Env, auth: &str) -> PathBuf {
    let text = format!(
        r#"[[tenants]]
name = "t1"
tenant_id = "{DEMO_TENANT_ID}"
client_id = "{DEMO_CLIENT_ID}"
login_url = "{url}"
api_url = "{url}"
{source}{auth}

[poll]
page_size = 100

[store]
path = "alerts.db"
"#,
        url = env.sim.url(),
        // These tests read the MDE API unless the lines name a source.
        source = if auth.contains("source =") {
            ""
        } else {
            "source = \"mde\"\n"
        },
    );
    std::fs::write(&env.config_path, text).unwrap();
    env.config_path.clone()
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn put(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_grant_with_ps256_and_rs256() {
    let cert = make_cert(-1, 365);
    let env = env_trusting(&cert, Opts::default()).await;
    let c = put(env.path(), "app.crt", &cert.cert_pem);
    let k = put(env.path(), "app.key", &cert.key_pem);
    // PS256 (the default), certificate and key apart.
    write_config(
        &env,
        &format!("auth = \"certificate\"\ncertificate_file = \"{c}\"\nprivate_key_file = \"{k}\""),
    );
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", out_text(&out));
    assert!(out_text(&out).contains("40 new"));
    // RS256 with x5t, certificate and key in one PEM, through the v1 endpoint.
    let both = put(
        env.path(),
        "both.pem",
        &format!("{}{}", cert.cert_pem, cert.key_pem),
    );
    write_config(
        &env,
        &format!(
            "auth = \"certificate\"\ncertificate_file = \"{both}\"\nassertion_algorithm = \"RS256\"\ntoken_endpoint = \"v1\""
        ),
    );
    let out = run(&env, &["auth", "check"]).await;
    let t = out_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("signed in with certificate"), "{t}");
    assert!(t.contains("a poll would work"), "{t}");
    // The same grant for Microsoft Graph: its audience, SecurityAlert.Read.All, alerts_v2.
    write_config(
        &env,
        &format!(
            "auth = \"certificate\"\ncertificate_file = \"{c}\"\nprivate_key_file = \"{k}\"\nsource = \"graph\"\ngraph_url = \"{}\"",
            env.sim.url()
        ),
    );
    let out = run(&env, &["auth", "check"]).await;
    let t = out_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("https://graph.microsoft.com  [ok]"), "{t}");
    assert!(t.contains("SecurityAlert.Read.All  [ok]"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_gets_a_delegated_token() {
    let env = Env::new(sim_with(|_| {}), Opts::default()).await;
    let pw = put(env.path(), "password", &format!("{DEMO_PASSWORD}\n"));
    write_config(
        &env,
        &format!("auth = \"password\"\nusername = \"{DEMO_USER}\"\npassword_file = \"{pw}\""),
    );
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", out_text(&out));
    let out = run(&env, &["auth", "check"]).await;
    let t = out_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("delegated (scp): Alert.Read"), "{t}");
    assert!(t.contains(DEMO_USER), "{t}");
    // Delegated for Microsoft Graph too.
    write_config(
        &env,
        &format!(
            "auth = \"password\"\nusername = \"{DEMO_USER}\"\npassword_file = \"{pw}\"\nsource = \"graph\"\ngraph_url = \"{}\"",
            env.sim.url()
        ),
    );
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", out_text(&out));
    let out = run(&env, &["auth", "check"]).await;
    let t = out_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("delegated (scp): SecurityAlert.Read.All"), "{t}");
}

/// Each AADSTS code a user meets: exit non-zero, the code and the explanation in the output, in
/// `poll`, `auth check` and `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_entra_error_is_explained() {
    let good_cert = make_cert(-1, 365);
    let other_cert = make_cert(-1, 365);
    struct Case {
        code: &'static str,
        explanation: &'static str,
        identity: Box<dyn Fn(&mut SimConfig)>,
        auth: Box<dyn Fn(&Path) -> String>,
        tenant: &'static str,
        client: &'static str,
    }
    let secret_auth = |secret: &'static str| -> Box<dyn Fn(&Path) -> String> {
        Box::new(move |dir| format!("client_secret_file = \"{}\"", put(dir, "s", secret)))
    };
    let password_auth = |user: &'static str, pw: &'static str| -> Box<dyn Fn(&Path) -> String> {
        Box::new(move |dir| {
            format!(
                "auth = \"password\"\nusername = \"{user}\"\npassword_file = \"{}\"",
                put(dir, "pw", pw)
            )
        })
    };
    let (gc, gk) = (good_cert.cert_pem.clone(), good_cert.key_pem.clone());
    let (oc, ok) = (other_cert.cert_pem.clone(), other_cert.key_pem.clone());
    let cert_auth = move |c: String, k: String| -> Box<dyn Fn(&Path) -> String> {
        Box::new(move |dir| {
            format!(
                "auth = \"certificate\"\ncertificate_file = \"{}\"\nprivate_key_file = \"{}\"",
                put(dir, "c.pem", &c),
                put(dir, "k.pem", &k)
            )
        })
    };
    let registered = gc.clone();
    let registered2 = gc.clone();
    let none = || -> Box<dyn Fn(&mut SimConfig)> { Box::new(|_| {}) };
    let cases = vec![
        Case {
            code: "AADSTS7000215",
            explanation: "not its Secret ID",
            identity: none(),
            auth: secret_auth("wrong-secret"),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS7000222",
            explanation: "has expired",
            identity: Box::new(|c| c.identity.secret_expired = true),
            auth: secret_auth(mde_sim::DEMO_CLIENT_SECRET),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS700016",
            explanation: "no application with this client_id",
            identity: none(),
            auth: secret_auth("x"),
            tenant: DEMO_TENANT_ID,
            client: "11111111-1111-1111-1111-111111111111",
        },
        Case {
            code: "AADSTS90002",
            explanation: "tenant does not exist",
            identity: none(),
            auth: secret_auth("x"),
            tenant: "22222222-2222-2222-2222-222222222222",
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS50126",
            explanation: "user name or password is wrong",
            identity: none(),
            auth: password_auth(DEMO_USER, "nope"),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS50076",
            explanation: "cannot do",
            identity: none(),
            auth: password_auth("mfa-user@contoso.example", DEMO_PASSWORD),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS50079",
            explanation: "cannot do",
            identity: none(),
            auth: password_auth("new-user@contoso.example", DEMO_PASSWORD),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS50034",
            explanation: "does not exist in this tenant",
            identity: none(),
            auth: password_auth("ghost@contoso.example", DEMO_PASSWORD),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS500011",
            explanation: "not provisioned",
            identity: Box::new(|c| c.identity.resource_provisioned = false),
            auth: secret_auth(mde_sim::DEMO_CLIENT_SECRET),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS700027",
            explanation: "rejected the signed certificate assertion",
            identity: Box::new(move |c| c.identity.certificate_pem = Some(registered.clone())),
            auth: cert_auth(oc.clone(), ok.clone()),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
        Case {
            code: "AADSTS700024",
            explanation: "clock",
            identity: Box::new(move |c| {
                c.identity.certificate_pem = Some(registered2.clone());
                c.identity.clock_skew_secs = 3600;
            }),
            auth: cert_auth(gc.clone(), gk.clone()),
            tenant: DEMO_TENANT_ID,
            client: DEMO_CLIENT_ID,
        },
    ];
    for case in cases {
        let env = Env::new(sim_with(|c| (case.identity)(c)), Opts::default()).await;
        let auth = (case.auth)(env.path());
        let text = std::fs::read_to_string(write_config(&env, &auth))
            .unwrap()
            .replace(DEMO_TENANT_ID, case.tenant)
            .replace(DEMO_CLIENT_ID, case.client);
        std::fs::write(&env.config_path, text).unwrap();
        for args in [&["poll"][..], &["auth", "check"], &["status"]] {
            let out = run(&env, args).await;
            let t = out_text(&out);
            assert_eq!(out.status.code(), Some(1), "{} {args:?}: {t}", case.code);
            assert!(t.contains(case.code), "{} {args:?}: {t}", case.code);
            assert!(t.contains(case.explanation), "{} {args:?}: {t}", case.code);
        }
    }
}

async fn expect_78(env: &Env, auth: &str, key: &str) {
    write_config(env, auth);
    let out = run(env, &["config", "check"]).await;
    let t = out_text(&out);
    assert_eq!(out.status.code(), Some(78), "{auth}\n{t}");
    assert!(
        t.contains(key),
        "{auth}: the error does not name {key}: {t}"
    );
    assert!(t.contains("fix:"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credential_files_and_clouds_exit_78_naming_the_key() {
    let env = Env::new(sim_with(|_| {}), Opts::default()).await;
    let cert = make_cert(-1, 365);
    let expired = make_cert(-30, -1);
    let d = env.path();
    let c = put(d, "c.pem", &cert.cert_pem);
    let k = put(d, "k.pem", &cert.key_pem);
    let other_key = put(d, "other.key", &make_cert(-1, 10).key_pem);
    let garbage = put(d, "garbage.pem", "this is not PEM\n");
    let ex = put(
        d,
        "expired.pem",
        &format!("{}{}", expired.cert_pem, expired.key_pem),
    );
    let cert_only = |file: &str| format!("auth = \"certificate\"\ncertificate_file = \"{file}\"");
    let k0 = "tenants[0]";
    expect_78(
        &env,
        &cert_only("/nonexistent/app.pem"),
        &format!("{k0}.certificate_file"),
    )
    .await;
    expect_78(&env, &cert_only(&c), &format!("{k0}.certificate_file")).await; // no key in it
    expect_78(&env, &cert_only(&k), &format!("{k0}.certificate_file")).await; // a key, not a cert
    expect_78(
        &env,
        &cert_only(&garbage),
        &format!("{k0}.certificate_file"),
    )
    .await;
    expect_78(&env, &cert_only(&ex), &format!("{k0}.certificate_file")).await; // expired
    expect_78(
        &env,
        &format!(
            "{}\nprivate_key_file = \"/nonexistent/k.pem\"",
            cert_only(&c)
        ),
        &format!("{k0}.private_key_file"),
    )
    .await;
    expect_78(
        &env,
        &format!("{}\nprivate_key_file = \"{other_key}\"", cert_only(&c)),
        &format!("{k0}.private_key_file"),
    )
    .await;
    expect_78(
        &env,
        &format!("{}\nprivate_key_file = \"{garbage}\"", cert_only(&c)),
        &format!("{k0}.private_key_file"),
    )
    .await;
    expect_78(
        &env,
        "client_secret_env = \"X\"\ncloud = \"azure-china\"",
        &format!("{k0}.cloud"),
    )
    .await;
    expect_78(
        &env,
        "client_secret_env = \"X\"\nregion = \"mars\"",
        &format!("{k0}.region"),
    )
    .await;
    expect_78(
        &env,
        "auth = \"password\"\npassword_env = \"X\"",
        &format!("{k0}.username"),
    )
    .await;
    expect_78(
        &env,
        "client_secret_env = \"X\"\ncertificate_file = \"a.pem\"",
        &format!("{k0}.certificate_file"),
    )
    .await;
    expect_78(
        &env,
        "auth = \"password\"\nusername = \"a@b.c\"\npassword_env = \"NO_SUCH_VAR_4711\"",
        &format!("{k0}.password_env"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_check_reports_missing_permissions_and_can_show_the_token() {
    let env = Env::new(
        sim_with(|c| c.identity.roles = vec!["Machine.Read.All".into()]),
        Opts::default(),
    )
    .await;
    let s = put(env.path(), "s", mde_sim::DEMO_CLIENT_SECRET);
    write_config(&env, &format!("client_secret_file = \"{s}\""));
    let out = run(&env, &["auth", "check"]).await;
    let t = out_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("Machine.Read.All  [PROBLEM]"), "{t}");
    assert!(t.contains("a poll would NOT work"), "{t}");
    assert!(
        !env.sim
            .issued_tokens()
            .iter()
            .any(|tok| t.contains(tok.as_str())),
        "the token was printed without --show-token"
    );
    let out = run(&env, &["auth", "check", "--show-token"]).await;
    let t = out_text(&out);
    assert!(
        env.sim
            .issued_tokens()
            .iter()
            .any(|tok| t.contains(tok.as_str())),
        "{t}"
    );
    assert!(
        t.contains("warning: the next line is a live access token"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_key_or_token_leaks_at_trace_level() {
    let cert = make_cert(-1, 365);
    let env = env_trusting(
        &cert,
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    let pw = put(env.path(), "pw", DEMO_PASSWORD);
    let c = put(env.path(), "c.pem", &cert.cert_pem);
    let k = put(env.path(), "k.pem", &cert.key_pem);
    let key_body: String = cert
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let mut output = String::new();
    for auth in [
        format!("auth = \"password\"\nusername = \"{DEMO_USER}\"\npassword_file = \"{pw}\""),
        format!("auth = \"certificate\"\ncertificate_file = \"{c}\"\nprivate_key_file = \"{k}\""),
    ] {
        write_config(&env, &format!("{auth}\n"));
        for args in [
            &["config", "check"][..],
            &["auth", "check"],
            &["poll"],
            &["status"],
        ] {
            let out = run_with(&env, args, |c| {
                c.env("RUST_LOG", "trace");
            })
            .await;
            output.push_str(&out_text(&out));
        }
    }
    // A proxy with credentials: shown without its password, even when it fails.
    std::fs::write(
        &env.config_path,
        std::fs::read_to_string(&env.config_path).unwrap()
            + "\n[http]\nproxy = \"http://proxyuser:proxy-s3cret@127.0.0.1:9\"\n",
    )
    .unwrap();
    for args in [&["config", "check"][..], &["poll"]] {
        let out = run_with(&env, args, |c| {
            c.env("RUST_LOG", "trace");
        })
        .await;
        output.push_str(&out_text(&out));
    }
    assert!(
        output.contains("proxyuser"),
        "the proxy user is shown: {output}"
    );
    let tokens = env.sim.issued_tokens();
    assert!(tokens.len() >= 2, "both grants got tokens");
    let mut hay = vec![("output".to_owned(), output)];
    for f in ["alerts.db", "alerts.db-wal"] {
        if let Ok(b) = std::fs::read(env.path().join(f)) {
            hay.push((f.into(), String::from_utf8_lossy(&b).into_owned()));
        }
    }
    for (name, h) in &hay {
        assert!(
            !h.contains(DEMO_PASSWORD),
            "the password leaked into {name}"
        );
        assert!(
            !h.contains("proxy-s3cret"),
            "the proxy password leaked into {name}"
        );
        assert!(
            !h.contains(&key_body[..60]),
            "the private key leaked into {name}"
        );
        for t in &tokens {
            assert!(!h.contains(t.as_str()), "a token leaked into {name}");
        }
    }
}

/// A forward proxy on loopback that records what it sees and passes requests on.
async fn forward_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new().fallback(move |req: Request| {
        let log = log.clone();
        let client = client.clone();
        async move {
            let auth = req
                .headers()
                .get("proxy-authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)")
                .to_owned();
            log.lock()
                .unwrap()
                .push(format!("{} {} auth={auth}", req.method(), req.uri()));
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut fwd = client.request(parts.method.clone(), parts.uri.to_string());
            for (k, v) in parts.headers.iter() {
                if !k.as_str().starts_with("proxy-") && k != "host" {
                    fwd = fwd.header(k, v);
                }
            }
            let resp = fwd.body(body).send().await.unwrap();
            let mut out = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            out.body(Body::from(resp.bytes().await.unwrap())).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_the_configured_proxy_with_its_credentials() {
    let env = Env::new(sim_with(|_| {}), Opts::default()).await;
    let (proxy, seen) = forward_proxy().await;
    let s = put(env.path(), "s", mde_sim::DEMO_CLIENT_SECRET);
    write_config(&env, &format!("client_secret_file = \"{s}\""));
    let with_creds = proxy.replace("http://", "http://svc%40proxy:p%40ss@");
    std::fs::write(
        &env.config_path,
        std::fs::read_to_string(&env.config_path).unwrap()
            + &format!("\n[http]\nproxy = \"{with_creds}\"\n"),
    )
    .unwrap();
    // NO_PROXY (which CI sets for loopback) would rightly send these requests around the proxy.
    let out = run_with(&env, &["poll"], |c| {
        c.env_remove("NO_PROXY").env_remove("no_proxy");
    })
    .await;
    assert!(out.status.success(), "{}", out_text(&out));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("POST") && l.contains("/oauth2/v2.0/token")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET") && l.contains("/api/alerts")),
        "{seen:?}"
    );
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("svc@proxy:p@ss")
    );
    assert!(
        seen.iter().all(|l| l.ends_with(&format!("auth={basic}"))),
        "{seen:?}"
    );
    let out = run(&env, &["config", "check"]).await;
    let t = out_text(&out);
    assert!(t.contains("user svc@proxy, password redacted"), "{t}");
    assert!(!t.contains("p@ss") && !t.contains("p%40ss"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_others_may_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(sim_with(|_| {}), Opts::default()).await;
    let s = put(env.path(), "s", mde_sim::DEMO_CLIENT_SECRET);
    write_config(&env, &format!("client_secret_file = \"{s}\""));
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&env, &["config", "check"]).await;
    assert!(out.status.success());
    let t = out_text(&out);
    assert!(t.contains("may be read by group or others"), "{t}");
    assert!(t.contains("chmod 0600"), "the fix is said: {t}");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&env, &["config", "check"]).await;
    assert!(
        !out_text(&out).contains("may be read by group or others"),
        "{}",
        out_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_near_expiry_is_warned_about() {
    let cert = make_cert(-300, 10);
    let env = env_trusting(&cert, Opts::default()).await;
    let both = put(
        env.path(),
        "both.pem",
        &format!("{}{}", cert.cert_pem, cert.key_pem),
    );
    write_config(
        &env,
        &format!("auth = \"certificate\"\ncertificate_file = \"{both}\""),
    );
    let out = run(&env, &["poll"]).await;
    let t = out_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("certificate expires in"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_proxy_variables_apply_without_a_configured_proxy() {
    let env = Env::new(sim_with(|_| {}), Opts::default()).await;
    let (proxy, seen) = forward_proxy().await;
    let s = put(env.path(), "s", mde_sim::DEMO_CLIENT_SECRET);
    write_config(&env, &format!("client_secret_file = \"{s}\""));
    let out = run_with(&env, &["poll"], |c| {
        c.env("HTTP_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
    })
    .await;
    assert!(out.status.success(), "{}", out_text(&out));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|l| l.contains("/api/alerts")), "{seen:?}");
}

/// The simulator keeps its own copy of Defender's resource (it cannot depend on mde-alerts); a
/// token for any other audience would be refused, so the two must not drift apart.
#[test]
fn simulator_serves_the_resource_mde_alerts_asks_for() {
    assert_eq!(mde_sim::RESOURCE, mde_alerts::config::MDE_RESOURCE);
}
