use super::pager::split;
use super::*;
use crate::source::Created;
use crate::source::fake::{FakeAlert, FakeSource, Hostile, OrderBy};
use crate::store::Outcome;
use proptest::prelude::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

const SETTINGS: PollSettings = PollSettings {
    overlap: Duration::from_secs(600),
    initial_lookback: Duration::from_secs(30 * 86_400),
    page_size: 1,
};

/// The store's latest raw JSON per alert id.
fn stored(store: &Store) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    store
        .for_each_alert(|_, raw| {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            assert!(out.insert(id, raw.to_owned()).is_none(), "stored twice");
            Ok(())
        })
        .unwrap();
    out
}

/// A change the world undergoes before one call.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// `count` alerts are updated at one shared new instant.
    Update(usize, usize),
    /// `count` alerts are updated and become visible only three calls later.
    UpdateLate(usize, usize),
    /// `count` new alerts appear at one shared instant.
    Create(usize),
    /// Nothing.
    Rest,
}

fn moves() -> impl Strategy<Value = Move> {
    prop_oneof![
        (0usize..1_000, 1usize..30).prop_map(|(at, n)| Move::Update(at, n)),
        (0usize..1_000, 1usize..10).prop_map(|(at, n)| Move::UpdateLate(at, n)),
        (1usize..30).prop_map(Move::Create),
        Just(Move::Rest),
    ]
}

fn apply(m: Move, call: u64, world: &mut Vec<FakeAlert>) {
    // Updates carry a time a little in the past: "now" as Defender stamped it, or (late
    // ones) a time the alert is only made visible some calls after.
    let now = ApiTime::now().minus(Duration::from_secs(2));
    let mut touch = |at: usize, n: usize, hidden: u32| {
        if world.is_empty() {
            return;
        }
        let len = world.len();
        for k in 0..n.min(len) {
            let a = &mut world[(at + k * 7) % len];
            a.updated = a.updated.max(now);
            a.version += 1;
            a.hidden_for = hidden;
        }
    };
    match m {
        Move::Update(at, n) => touch(at, n, 0),
        Move::UpdateLate(at, n) => touch(at, n, 3),
        Move::Create(n) => {
            let base = world.len();
            for k in 0..n {
                world.push(FakeAlert::new(
                    format!("new{call:04}-{:04}", base + k),
                    now,
                    Some(now.minus(Duration::from_secs(60))),
                ));
            }
        }
        Move::Rest => {}
    }
}

/// The servers of the model test: Graph as documented, and one for each way a server departs
/// from it that the pager must survive.
#[derive(Debug, Clone, Copy)]
enum Server {
    Documented,
    RefusesNull,
    RefusesDeepSkip,
    LoopingLink,
    IgnoresFilter,
    IgnoresService,
    Oversize,
    Capped,
    DateIn1970,
    DateIn2000,
}

fn servers() -> impl Strategy<Value = Server> {
    prop_oneof![
        Just(Server::RefusesNull),
        Just(Server::RefusesDeepSkip),
        Just(Server::LoopingLink),
        Just(Server::IgnoresFilter),
        Just(Server::IgnoresService),
        Just(Server::Oversize),
        Just(Server::Capped),
        Just(Server::DateIn1970),
        Just(Server::DateIn2000),
    ]
}

fn orders() -> impl Strategy<Value = OrderBy> {
    prop_oneof![
        Just(OrderBy::Sorted),
        Just(OrderBy::Refused),
        Just(OrderBy::Ignored),
        Just(OrderBy::ByCreation),
    ]
}

impl Server {
    fn hostile(self, page: u32) -> Hostile {
        let date = |t: &str| Some(ApiTime::parse(t).unwrap());
        match self {
            Server::Documented => Hostile::default(),
            Server::RefusesNull => Hostile {
                refuse_null: true,
                links: true,
                ..Hostile::default()
            },
            // A `$skip` limit a few pages deep, with Graph's links to go past it.
            Server::RefusesDeepSkip => Hostile {
                max_skip: Some(page * 3),
                links: true,
                ..Hostile::default()
            },
            Server::LoopingLink => Hostile {
                links: true,
                looping_links: true,
                ..Hostile::default()
            },
            Server::IgnoresFilter => Hostile {
                ignore_filter: true,
                ..Hostile::default()
            },
            Server::IgnoresService => Hostile {
                ignore_service: true,
                ..Hostile::default()
            },
            Server::Oversize => Hostile {
                oversize: 3,
                ..Hostile::default()
            },
            Server::Capped => Hostile {
                cap: Some((page as usize / 2).max(1)),
                ..Hostile::default()
            },
            Server::DateIn1970 => Hostile {
                date: date("1970-01-01T00:00:00Z"),
                ..Hostile::default()
            },
            Server::DateIn2000 => Hostile {
                date: date("2000-01-01T00:00:00Z"),
                ..Hostile::default()
            },
        }
    }
}

/// One run of the model: a world of `n` alerts over `instants` instants (with odd creation times
/// by `odd`, and alerts of another product), changed by `script` while a first poll pages
/// through it; then one more poll of the settled world, which must end `Ok` within its cap on
/// calls and leave every alert of the tenant's products stored once, in its latest state.
#[allow(clippy::too_many_arguments)]
fn model(
    n: usize,
    instants: u64,
    page: u32,
    order: OrderBy,
    script: Vec<Move>,
    odd: u8,
    server: Server,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let mut world: Vec<FakeAlert> = (0..n)
        .map(|i| {
            let created = match (odd, i % 4) {
                (1, 0) => None,
                (2, 0) => Some(ApiTime::parse("0001-01-01T00:00:00Z").unwrap()),
                (3, 0) => Some(ApiTime::parse("9999-12-31T23:59:59Z").unwrap()),
                _ => Some(base.minus(Duration::from_secs(i as u64))),
            };
            FakeAlert::new(
                format!("a{i:04}"),
                base.plus(Duration::from_secs(i as u64 % instants)),
                created,
            )
        })
        .collect();
    // Another product's alerts at the same instants: never the tenant's to store.
    world.extend((0..n / 8).map(|i| {
        FakeAlert::new(
            format!("fa{i:04}"),
            base.plus(Duration::from_secs(i as u64 % instants)),
            Some(base),
        )
        .from_service("microsoftDefenderForOffice365")
    }));
    let source = FakeSource::new(world, order).with_hostile(server.hostile(page));
    let mut script = script.into_iter();
    source.set_mutator(Some(Box::new(move |call, w| {
        if let Some(m) = script.next() {
            apply(m, call, w);
        }
    })));
    let settings = PollSettings {
        page_size: page,
        ..SETTINGS
    };
    // Pages of one alert over a 160-alert world take thousands of calls in window mode; the cap
    // is what a poll of this size may spend, and the second poll must end well within it.
    let cap = 40_000;
    // The first poll may give up on an instant that keeps changing; never silently.
    let first = block_on(poll_tenant_within(&source, &store, "t", settings, cap));
    if let Err(e) = &first {
        prop_assert!(matches!(e, PollError::Protocol(_)), "{e}");
    }
    if let Ok(r) = &first {
        prop_assert!(r.cursor_after.is_none_or(|c| c <= ApiTime::now()));
    }
    source.set_mutator(None);
    source.with_world(|w| w.iter_mut().for_each(|a| a.hidden_for = 0));
    let second = block_on(poll_tenant_within(&source, &store, "t", settings, cap));
    let second = match second {
        Ok(r) => r,
        Err(e) => return Err(TestCaseError::fail(format!("{server:?}: {e}"))),
    };
    prop_assert_eq!(second.outcome, Outcome::Ok, "{:?}: {}", server, second);
    let s = store.lock().unwrap();
    let got = stored(&s);
    let truth = source.truth();
    prop_assert_eq!(got.len(), truth.len(), "{:?}", server);
    for a in &truth {
        prop_assert_eq!(
            got.get(&a.id),
            Some(&a.json()),
            "{:?}: alert {} is missing or stale",
            server,
            a.id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The pager's model test: whatever the world does while a poll pages through it (alerts
    /// move, arrive, become visible late, crowd one instant, carry odd creation times) and
    /// whatever the server does with `$orderby`, one more poll of the settled world leaves the
    /// store holding every alert exactly once, in its latest state.
    #[test]
    fn the_pager_loses_nothing_while_the_world_moves(
        n in 0usize..160,
        instants in 1u64..8,
        page in 1u32..25,
        order in orders(),
        script in proptest::collection::vec(moves(), 0..16),
        odd in 0u8..4,
    ) {
        model(n, instants, page, order, script, odd, Server::Documented)?;
    }

    /// The same model against a server that departs from Graph's documented surface in one
    /// way: refuses the null comparison or a deep `$skip`, loops its nextLink, ignores `$filter`
    /// or `serviceSource`, sends more than `$top`, caps pages silently, or dates its answers in
    /// 1970 or 2000. Every case ends with nothing lost, nothing stale, and a poll within its cap.
    #[test]
    fn a_hostile_server_loses_nothing_while_the_world_moves(
        n in 0usize..120,
        instants in 1u64..6,
        page in 2u32..20,
        order in orders(),
        script in proptest::collection::vec(moves(), 0..12),
        odd in 0u8..4,
        server in servers(),
    ) {
        model(n, instants, page, order, script, odd, server)?;
    }
}

/// Found by the model test: a server that ignores `$orderby` answered a full first page that
/// happened to look sorted (an old alert, then one just updated); keyset paging stepped from
/// the new alert's time and never read the 143 older ones, and both polls said ok. The first
/// full page of a poll is now checked.
#[test]
fn a_page_that_only_looks_sorted_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let mut world: Vec<FakeAlert> = (0..145)
        .map(|i| {
            FakeAlert::new(
                format!("a{i:04}"),
                base,
                Some(base.minus(Duration::from_secs(i))),
            )
        })
        .collect();
    // Reverse id order puts a0144 (old) before a0143 (just updated): it looks ascending.
    let now = ApiTime::now().minus(Duration::from_secs(2));
    for id in [136, 143] {
        world[id].updated = now;
        world[id].version += 1;
    }
    let source = FakeSource::new(world, OrderBy::Ignored);
    let settings = PollSettings {
        page_size: 2,
        ..SETTINGS
    };
    let r = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
    assert_eq!(r.mode, Mode::Windows(WhyWindows::Ignored));
    assert_eq!(stored(&store.lock().unwrap()).len(), 145);
}

/// A server that sorts pays one extra call per full page for the proof; a quiet poll still
/// costs one call.
#[test]
fn the_order_check_costs_one_call_per_full_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let world: Vec<FakeAlert> = (0..100)
        .map(|i| {
            FakeAlert::new(
                format!("a{i:04}"),
                base.plus(Duration::from_secs(i)),
                Some(base),
            )
        })
        .collect();
    let source = FakeSource::new(world, OrderBy::Sorted);
    let settings = PollSettings {
        page_size: 10,
        ..SETTINGS
    };
    let r = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
    assert_eq!(r.mode, Mode::Keyset);
    // 100 alerts, pages of 10 overlapping by one alert: 11 full pages and a short one, plus
    // one check per full page.
    assert_eq!(r.api_calls, 23, "{r}");
    let quiet = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
    assert_eq!(quiet.api_calls, 1, "a quiet poll costs one call: {quiet}");
}

/// Adversarial review: a server that ignores `$orderby` and answers in creation order sent
/// pages that each looked sorted ([a1 a2], [a2 a3], [a3]); the pager jumped to a3's time and
/// never read a4 and a5. Every full page now proves it holds everything before its last
/// instant.
#[test]
fn creation_order_pages_that_look_sorted_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let min = |m: u64| base.plus(Duration::from_secs(60 * m));
    let world = [(1, 1), (2, 2), (3, 10), (4, 4), (5, 5)]
        .into_iter()
        .map(|(c, u)| FakeAlert::new(format!("a{c}"), min(u), Some(min(c))))
        .collect();
    let source = FakeSource::new(world, OrderBy::ByCreation);
    let settings = PollSettings {
        page_size: 2,
        ..SETTINGS
    };
    let r = block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
    assert_eq!(stored(&store.lock().unwrap()).len(), 5, "{r}");
    assert_eq!(r.mode, Mode::Windows(WhyWindows::Ignored));
}

/// Adversarial review: with this machine's clock two hours ahead of the server's, a complete
/// poll moved the watermark to "our now − overlap", past alerts the server had not yet
/// stamped; the next one was never read. The watermark follows the server's `Date` and never
/// passes the cursor.
#[test]
fn a_clock_ahead_of_the_server_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let behind = Duration::from_secs(2 * 3_600);
    let server_now = || ApiTime::now().minus(behind);
    let a = FakeAlert::new("a", server_now().minus(Duration::from_secs(1_800)), None);
    let source = FakeSource::new(vec![a], OrderBy::Sorted).with_server_clock_behind(behind);
    let settings = PollSettings {
        page_size: 10,
        ..SETTINGS
    };
    block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
    // Stamped by the server's clock, and visible three minutes late.
    let late = server_now().minus(Duration::from_secs(180));
    source.with_world(|w| w.push(FakeAlert::new("b", late, None)));
    block_on(poll_tenant(&source, &store, "t", settings)).unwrap();
    assert_eq!(stored(&store.lock().unwrap()).len(), 2);
}

/// Halving a creation window keeps its open sides open and never loses a tick.
#[test]
fn splitting_creation_windows_covers_everything() {
    let t = ApiTime::parse("2026-01-01T00:00:00Z").unwrap();
    let (lo, hi) = split(Created::Within(None, Some(t))).unwrap();
    let Created::Within(None, Some(mid)) = lo else {
        panic!("{lo:?}")
    };
    assert_eq!(hi, Created::Within(Some(mid), Some(t)));
    let (lo, hi) = split(Created::Within(Some(t), None)).unwrap();
    let Created::Within(Some(a), Some(mid)) = lo else {
        panic!("{lo:?}")
    };
    assert_eq!(a, t);
    assert_eq!(hi, Created::Within(Some(mid), None));
    assert!(split(Created::Missing).is_none());
    let one = ApiTime::from_ticks(t.ticks() + 1);
    assert!(split(Created::Within(Some(t), Some(one))).is_none());
}
