use super::pager::split;
use super::*;
use crate::source::AlertSource;
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
        .with_service("microsoftDefenderForOffice365")
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

/// A server that ignores `$orderby` and answers in creation order sends pages that each look
/// sorted ([a1 a2], [a2 a3], [a3]); a pager that trusted them would jump to a3's time and never
/// read a4 and a5. Every full page proves it holds everything before its last instant.
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

/// With this machine's clock two hours ahead of the server's, a watermark at "our now −
/// overlap" would pass alerts the server had not yet stamped, and they would never be read. The
/// watermark follows the server's `Date` and never passes the cursor.
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

/// A store in a temporary directory.
fn temp_store() -> (tempfile::TempDir, Arc<Mutex<Store>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    (dir, store)
}

/// `n` alerts at one instant an hour ago, created in `created` (one creation tick each when
/// `distinct`, else all in the same tick).
fn one_instant(n: usize, distinct: bool) -> Vec<FakeAlert> {
    let t = ApiTime::now().minus(Duration::from_secs(3_600));
    (0..n)
        .map(|i| {
            let c = if distinct { i as u64 } else { 0 };
            FakeAlert::new(
                format!("a{i:04}"),
                t,
                Some(t.minus(Duration::from_secs(600 + c))),
            )
        })
        .collect()
}

fn with_page(page_size: u32) -> PollSettings {
    PollSettings {
        page_size,
        ..SETTINGS
    }
}

/// A server that answers `createdDateTime eq null` with 400 "Invalid filter clause" (a clause
/// Graph does not document) used to fail every poll at the first instant larger than a page:
/// the tenant stayed there for good. The instant is now read whole, alerts without a creation
/// time included, and the refusal is said once.
#[test]
fn a_refused_null_comparison_reads_the_instant_whole() {
    let (_dir, store) = temp_store();
    let mut world = one_instant(30, true);
    for a in world.iter_mut().take(3) {
        a.created = None;
    }
    let source = FakeSource::new(world, OrderBy::Sorted).with_hostile(Hostile {
        refuse_null: true,
        links: true,
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(5))).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{r}");
    assert_eq!(r.quirks, [Quirk::NullRefused]);
    assert_eq!(stored(&store.lock().unwrap()).len(), 30, "{r}");
}

/// An instant of exactly a multiple of the page size past `$skip` 500: the last page is full and
/// carries no nextLink (there is no more). It used to fail every poll ("it sent no usable
/// @odata.nextLink"), and alerts updated later were never read. The pass now ends there.
#[test]
fn an_exact_multiple_tie_past_skip_500_ends_its_pass() {
    let (_dir, store) = temp_store();
    let source = FakeSource::new(one_instant(600, false), OrderBy::Sorted).with_hostile(Hostile {
        max_skip: Some(500),
        links: true,
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(100))).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{r}");
    let later = ApiTime::now().minus(Duration::from_secs(60));
    source.with_world(|w| w.push(FakeAlert::new("later", later, Some(later))));
    let r = block_on(poll_tenant(&source, &store, "t", with_page(100))).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{r}");
    assert_eq!(stored(&store.lock().unwrap()).len(), 601, "{r}");
}

/// A nextLink that leads back to its own page: followed, it reads the same page for ever (a
/// poll ran until its budget was spent, every poll). It is now recognised on its second sight,
/// said once, and `$skip` goes on.
#[test]
fn a_looping_next_link_is_said_once_and_skip_goes_on() {
    let (_dir, store) = temp_store();
    let source = FakeSource::new(one_instant(45, false), OrderBy::Sorted).with_hostile(Hostile {
        links: true,
        looping_links: true,
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{r}");
    assert_eq!(r.quirks, [Quirk::LoopingLink]);
    // Halving the creation windows down to one tick costs about a hundred calls; the loop adds
    // a few at most.
    assert!(r.api_calls < 150, "{r}");
    assert_eq!(stored(&store.lock().unwrap()).len(), 45, "{r}");
}

/// Pages capped below `$top` without a nextLink used to be taken for the end: a few alerts per
/// poll, every poll "ok". A short page that brought new alerts is now probed once; a capped
/// server is caught, and a quiet poll still costs one call.
#[test]
fn a_page_capped_below_top_is_not_taken_for_the_end() {
    let (_dir, store) = temp_store();
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let world = (0..40)
        .map(|i| {
            FakeAlert::new(
                format!("a{i:04}"),
                base.plus(Duration::from_secs(i)),
                Some(base),
            )
        })
        .collect();
    let source = FakeSource::new(world, OrderBy::Sorted).with_hostile(Hostile {
        cap: Some(3),
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{r}");
    assert_eq!(stored(&store.lock().unwrap()).len(), 40, "{r}");
    assert_eq!(r.quirks, [Quirk::Capped]);
    let quiet = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
    assert_eq!(quiet.api_calls, 1, "a quiet poll costs one call: {quiet}");
}

/// A server whose `Date` says 1970 (or 2000) used to pin the settled watermark: every quiet poll
/// re-read the whole lookback, silently. The far-off `Date` is said and not followed.
#[test]
fn a_server_date_far_in_the_past_is_said_and_a_quiet_poll_stays_one_call() {
    for date in ["1970-01-01T00:00:00Z", "2000-01-01T00:00:00Z"] {
        let (_dir, store) = temp_store();
        let base = ApiTime::now().minus(Duration::from_secs(7_200));
        let world = (0..50)
            .map(|i| {
                FakeAlert::new(
                    format!("a{i:04}"),
                    base.plus(Duration::from_secs(i)),
                    Some(base),
                )
            })
            .collect();
        let source = FakeSource::new(world, OrderBy::Sorted).with_hostile(Hostile {
            date: Some(ApiTime::parse(date).unwrap()),
            ..Hostile::default()
        });
        let r = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
        let quiet = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
        assert_eq!(quiet.api_calls, 1, "{date}: {quiet}");
        assert_eq!(r.quirks, [Quirk::FarDate], "{date}");
    }
}

/// A server that ignores the serviceSource clause used to get other products' alerts into an
/// endpoint-only tenant. They are said once and never stored.
#[test]
fn alerts_of_products_the_tenant_does_not_read_are_not_stored() {
    let (_dir, store) = temp_store();
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let mut world: Vec<FakeAlert> = (0..10)
        .map(|i| {
            FakeAlert::new(
                format!("a{i:04}"),
                base.plus(Duration::from_secs(i)),
                Some(base),
            )
        })
        .collect();
    world.extend((0..5).map(|i| {
        FakeAlert::new(
            format!("fa{i}"),
            base.plus(Duration::from_secs(i)),
            Some(base),
        )
        .with_service("microsoftDefenderForOffice365")
    }));
    let source = FakeSource::new(world, OrderBy::Sorted).with_hostile(Hostile {
        ignore_service: true,
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(100))).unwrap();
    assert_eq!(r.quirks, [Quirk::IgnoredService]);
    let got = stored(&store.lock().unwrap());
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(got.keys().all(|id| id.starts_with('a')));
}

/// A page larger than `$top` used to fail the order check and bring a misleading "ignored
/// $orderby" warning and window paging. It is now cut to `$top` and said as what it is.
#[test]
fn a_page_larger_than_top_is_not_taken_for_an_ignored_orderby() {
    let (_dir, store) = temp_store();
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let world = (0..40)
        .map(|i| {
            FakeAlert::new(
                format!("a{i:04}"),
                base.plus(Duration::from_secs(i)),
                Some(base),
            )
        })
        .collect();
    let source = FakeSource::new(world, OrderBy::Sorted).with_hostile(Hostile {
        oversize: 4,
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
    assert_eq!(r.mode, Mode::Keyset, "{r}");
    assert_eq!(r.quirks, [Quirk::Oversize]);
    assert_eq!(stored(&store.lock().unwrap()).len(), 40, "{r}");
}

/// A server that ignores `$filter` answers every request with everything: keyset paging saw
/// alerts outside its window. It is said, and each request is read to its end instead.
#[test]
fn a_server_that_ignores_the_filter_loses_nothing() {
    let (_dir, store) = temp_store();
    let base = ApiTime::now().minus(Duration::from_secs(7_200));
    let world = (0..40)
        .map(|i| {
            FakeAlert::new(
                format!("a{i:04}"),
                base.plus(Duration::from_secs(i % 7)),
                Some(base),
            )
        })
        .collect();
    let source = FakeSource::new(world, OrderBy::Sorted).with_hostile(Hostile {
        ignore_filter: true,
        ..Hostile::default()
    });
    let r = block_on(poll_tenant(&source, &store, "t", with_page(10))).unwrap();
    assert_eq!(r.outcome, Outcome::Ok, "{r}");
    assert!(r.quirks.contains(&Quirk::IgnoredFilter), "{r}");
    assert_eq!(stored(&store.lock().unwrap()).len(), 40, "{r}");
}

/// A poll used to stop only when a wait would pass its deadline: with budget to spare, a server
/// that never lets the pager finish kept it calling (3,000+ calls, 150 s past a 30 s schedule),
/// and an instant read without getting past it left the tenant healthy. A poll now stops at its
/// cap on calls, and one that stopped inside an instant is Stalled, saying where.
#[test]
fn a_poll_stops_at_its_cap_on_calls_and_stuck_inside_an_instant_is_stalled() {
    let (_dir, store) = temp_store();
    let source = FakeSource::new(one_instant(100, false), OrderBy::Sorted);
    let r = block_on(poll_tenant_within(&source, &store, "t", with_page(10), 6)).unwrap();
    assert_eq!(source.calls(), 6);
    assert_eq!(r.outcome, Outcome::Stalled, "{r}");
    let text = r.to_string();
    assert!(text.contains("inside the instant"), "{text}");
    assert!(!text.contains("raise page_size"), "{text}");
}
