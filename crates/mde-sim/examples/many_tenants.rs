//! How fast the many-tenant simulator answers, and what its tenants cost in memory.
//!
//! `cargo run --release -p mde-sim --example many_tenants -- [TENANTS] [ALERTS_PER_TENANT] [CLIENTS]`
//! (10,000, 20, 4 by default). The simulator runs on one thread (a current-thread runtime, as a
//! bound on what one core serves); `CLIENTS` threads send, each over one keep-alive connection:
//! a token per tenant, then a quiet `/api/alerts` call per tenant (a filter nothing matches: a
//! poll with nothing new), then a full one (all the tenant's alerts), then a quiet alerts_v2
//! call. It prints requests per second for each, and the process's resident memory before the
//! first request and after every tenant is in use.
//!
//! The client is a hand-written HTTP/1.1 loop over `std::net` rather than reqwest: the crate
//! stays free of an HTTP client, and the figure measures the server, not a client stack.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mde_sim::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, GRAPH_ROOT, RESOURCE, SimConfig, Simulator, TenantMode,
    tenant_id,
};

/// One keep-alive connection.
struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            addr,
            reader: BufReader::new(s),
        }
    }

    /// Sends one request and reads its answer: (status, body).
    fn send(
        &mut self,
        method: &str,
        target: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = auth {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.reader
            .get_mut()
            .write_all(req.as_bytes())
            .expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf).expect("body");
        (status, String::from_utf8_lossy(&buf).into_owned())
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `work(conn, i)` for every tenant number `i` on `clients` threads; requests per second.
fn phase(
    name: &str,
    addr: SocketAddr,
    tenants: usize,
    clients: usize,
    work: impl Fn(&mut Conn, usize) + Send + Sync + 'static,
) {
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (work, next) = (work.clone(), next.clone());
            std::thread::spawn(move || {
                let mut c = Conn::new(addr);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tenants {
                        return;
                    }
                    work(&mut c, i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{name:<34} {tenants:>6} requests in {s:>6.2} s: {:>7.0} per second",
        tenants as f64 / s
    );
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let tenants = args.next().unwrap_or(10_000);
    let per_tenant = args.next().unwrap_or(20);
    let clients = args.next().unwrap_or(4);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let cfg = SimConfig {
                initial_alerts: 0,
                tenants: TenantMode::Many {
                    alerts_per_tenant: per_tenant,
                },
                ..SimConfig::default()
            };
            let sim = Simulator::start(cfg, 0).await.expect("start");
            tx.send(sim.addr).expect("send");
            // Serve until the process ends.
            std::future::pending::<()>().await;
            drop(sim);
        });
    });
    let addr = rx.recv().expect("address");
    let rss_before = rss_kib();
    println!("{tenants} tenants × {per_tenant} alerts, {clients} client threads");

    let tokens: Arc<Vec<std::sync::OnceLock<(String, String)>>> =
        Arc::new((0..tenants).map(|_| std::sync::OnceLock::new()).collect());
    let t = tokens.clone();
    phase(
        "token (one per tenant, two kinds)",
        addr,
        tenants,
        clients,
        move |c, i| {
            let tid = tenant_id(i as u64);
            let mut get = |resource: &str| {
                let body = form(&[
                    ("client_id", DEMO_CLIENT_ID),
                    ("client_secret", DEMO_CLIENT_SECRET),
                    ("resource", resource),
                    ("grant_type", "client_credentials"),
                ]);
                let (status, b) = c.send("POST", &format!("/{tid}/oauth2/token"), None, &body);
                assert_eq!(status, 200, "{b}");
                let v: serde_json::Value = serde_json::from_str(&b).expect("json");
                v["access_token"].as_str().expect("token").to_owned()
            };
            let pair = (get(RESOURCE), get(GRAPH_ROOT));
            let _ = t[i].set(pair);
        },
    );
    let quiet = format!(
        "/api/alerts?{}",
        form(&[("$filter", "lastUpdateTime ge 2100-01-01T00:00:00Z")])
    );
    let t = tokens.clone();
    phase("quiet /api/alerts", addr, tenants, clients, move |c, i| {
        let tok = &t[i].get().expect("token").0;
        let (status, b) = c.send("GET", &quiet, Some(tok), "");
        assert_eq!(status, 200, "{b}");
        assert!(b.contains("\"value\":[]"), "{b}");
    });
    let t = tokens.clone();
    phase(
        "full /api/alerts (every alert)",
        addr,
        tenants,
        clients,
        move |c, i| {
            let tok = &t[i].get().expect("token").0;
            let (status, b) = c.send("GET", "/api/alerts", Some(tok), "");
            assert_eq!(status, 200, "{b}");
        },
    );
    let quiet_graph = format!(
        "/v1.0/security/alerts_v2?{}",
        form(&[("$filter", "lastUpdateDateTime ge 2100-01-01T00:00:00Z")])
    );
    let t = tokens.clone();
    phase("quiet alerts_v2", addr, tenants, clients, move |c, i| {
        let tok = &t[i].get().expect("token").1;
        let (status, b) = c.send("GET", &quiet_graph, Some(tok), "");
        assert_eq!(status, 200, "{b}");
    });
    let rss_after = rss_kib();
    drop(tokens);
    println!(
        "resident memory: {} MiB before, {} MiB with every tenant in use ({} KiB a tenant, the client's tokens included)",
        rss_before / 1024,
        rss_after / 1024,
        (rss_after.saturating_sub(rss_before)) / tenants.max(1) as u64
    );
}
