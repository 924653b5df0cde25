//! How long one alerts_v2 page takes with many alerts in the world: the first call builds every
//! version's Graph view (what each call cost before views were cached), later calls reuse them.
//!
//! `cargo run -p mde-sim --example graph_page_timing -- [ALERTS]` (20,000 by default).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use mde_sim::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID, GRAPH_ROOT, SimConfig, Simulator,
};

/// One HTTP/1.0 request (the connection closes after it): status and body.
fn call(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(format!("{head}\r\nHost: {addr}\r\n").as_bytes())
        .expect("write");
    if !body.is_empty() {
        let h = format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
        s.write_all(h.as_bytes()).expect("write");
    }
    s.write_all(format!("\r\n{body}").as_bytes())
        .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = h
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, b.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let alerts: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |a| a.parse().expect("a number"));
    let cfg = SimConfig {
        initial_alerts: alerts,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg, 0).await.expect("start");
    let addr = sim.addr;
    let timings = tokio::task::spawn_blocking(move || {
        let form = format!(
            "client_id={DEMO_CLIENT_ID}&client_secret={}&resource={}&grant_type=client_credentials",
            url::form_urlencoded::byte_serialize(DEMO_CLIENT_SECRET.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(GRAPH_ROOT.as_bytes()).collect::<String>(),
        );
        let (status, b) = call(addr, &format!("POST /{DEMO_TENANT_ID}/oauth2/token HTTP/1.0"), &form);
        assert_eq!(status, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        let tok = v["access_token"].as_str().expect("token").to_owned();
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let (status, b) = call(
                    addr,
                    &format!(
                        "GET /v1.0/security/alerts_v2?$top=1000&$orderby=lastUpdateDateTime%20asc HTTP/1.0\r\nAuthorization: Bearer {tok}"
                    ),
                    "",
                );
                assert_eq!(status, 200, "{b}");
                t.elapsed()
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("client");
    println!(
        "{alerts} alerts, one alerts_v2 page of 1,000: first {:.2?} (builds every view), then {:.2?} and {:.2?}",
        timings[0], timings[1], timings[2]
    );
}
