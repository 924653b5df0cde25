//! The report's tests: figures worked out by hand, both renderings, hostile text, extremes.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};

use super::chart::nice_axis;
use super::escape::{Html, MAX_SHOWN_CHARS, Md};
use super::format::{human_duration, human_window, num};
use super::*;
use crate::alert;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 14, 6, 0, 0).unwrap()
}

fn hours(h: i64) -> DateTime<Utc> {
    now() - TimeDelta::hours(h)
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn alert(
    id: &str,
    severity: &str,
    status: &str,
    created: Option<DateTime<Utc>>,
    updated: DateTime<Utc>,
    resolved: Option<DateTime<Utc>>,
    category: Option<&str>,
    device: Option<&str>,
) -> AlertSummary {
    AlertSummary {
        tenant: "contoso".into(),
        id: id.into(),
        title: format!("Alert {id}"),
        severity: severity.into(),
        status: status.into(),
        category: category.map(Into::into),
        device: device.map(Into::into),
        created,
        updated,
        resolved,
        web_url: None,
        classification: None,
    }
}

/// Eleven alerts covering every rule; the expected figures are worked out by hand in comments.
fn handcrafted() -> Vec<AlertSummary> {
    let ws1 = Some("WS1.contoso.com");
    vec![
        // New in window, open High, < 1 day, created today.
        alert(
            "a1",
            "High",
            "New",
            Some(hours(2)),
            hours(1),
            None,
            Some("Malware"),
            ws1,
        ),
        // Created 3 days ago, updated in window: "updated"; open Medium, 1–7 days.
        alert(
            "a2",
            "Medium",
            "InProgress",
            Some(hours(72)),
            hours(5),
            None,
            Some("Malware"),
            Some("ws1.contoso.com"),
        ),
        // Updated and resolved in window; time to resolve 38 h.
        alert(
            "a3",
            "Low",
            "Resolved",
            Some(hours(48)),
            hours(10),
            Some(hours(10)),
            Some("Execution"),
            Some("ws2"),
        ),
        // Everything older than 30 days: counted nowhere but the record count.
        alert(
            "a4",
            "High",
            "Resolved",
            Some(hours(40 * 24)),
            hours(35 * 24),
            Some(hours(35 * 24)),
            Some("Malware"),
            Some("ws3"),
        ),
        // Open Informational, 7–30 days, no category or device.
        alert(
            "a5",
            "Informational",
            "New",
            Some(hours(240)),
            hours(240),
            None,
            None,
            None,
        ),
        // Unknown severity, open, > 30 days; updated 2 days ago so in the top lists.
        alert(
            "a6",
            "Critical",
            "New",
            Some(hours(45 * 24)),
            hours(48),
            None,
            Some("Execution"),
            Some("ws2"),
        ),
        // Blank severity → UnSpecified; no creation time → its update time (30 min ago) → new.
        alert(
            "a7",
            " ",
            "New",
            None,
            now() - TimeDelta::minutes(30),
            None,
            Some("Persistence"),
            Some("ws4"),
        ),
        // Resolved 25 h ago: just outside the window; time to resolve 95 h.
        alert(
            "a8",
            "Medium",
            "Resolved",
            Some(hours(120)),
            hours(25),
            Some(hours(25)),
            Some("Execution"),
            Some("ws2"),
        ),
        // Created 30 h in the future (bad clock or data): counts as now → new, open High, < 1 day, today.
        alert(
            "a9",
            "High",
            "New",
            Some(now() + TimeDelta::hours(30)),
            now() + TimeDelta::hours(30),
            None,
            Some("Malware"),
            ws1,
        ),
        // Resolved before it was created: resolved in window, but no time to resolve.
        alert(
            "a10",
            "Low",
            "Resolved",
            Some(hours(1)),
            hours(1),
            Some(hours(3)),
            Some("Discovery"),
            None,
        ),
        // Unknown severity, resolved: in the per-day series but not among open severities.
        alert(
            "a11",
            "Bogus",
            "Resolved",
            Some(hours(26)),
            hours(20),
            Some(hours(20)),
            Some("Execution"),
            Some("WS2"),
        ),
    ]
}

fn input(alerts: &[AlertSummary]) -> ReportInput<'_> {
    ReportInput {
        generated_at: now(),
        window: Duration::from_secs(24 * 3600),
        alerts,
        timezone: None,
    }
}

fn pairs(v: &[(&str, usize)]) -> Vec<(String, usize)> {
    v.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

#[test]
fn figures_on_a_handcrafted_set() {
    let alerts = handcrafted();
    let f = render(&input(&alerts)).figures;
    assert_eq!(f.new_in_window, 4, "a1, a7, a9, a10");
    assert_eq!(f.updated_in_window, 3, "a2, a3, a11");
    assert_eq!(f.resolved_in_window, 3, "a3, a10, a11");
    assert_eq!(
        f.open_by_severity,
        pairs(&[
            // Unknown severities rank above High: a new one must not read as harmless.
            ("Critical", 1),
            ("High", 2),
            ("Medium", 1),
            ("Low", 0),
            ("Informational", 1),
            ("UnSpecified", 1),
        ])
    );
    assert_eq!(
        f.open_by_age,
        pairs(&[
            ("< 1 day", 3),
            ("1–7 days", 1),
            ("7–30 days", 1),
            ("> 30 days", 1)
        ])
    );
    assert_eq!(
        f.top_categories,
        pairs(&[
            ("Execution", 4),
            ("Malware", 3),
            ("Discovery", 1),
            ("Persistence", 1)
        ])
    );
    assert_eq!(
        f.top_devices,
        pairs(&[("ws2", 4), ("ws1.contoso.com", 3), ("ws4", 1)])
    );
    // (38 h + 95 h + 6 h) / 3 = 46 h 20 min.
    assert_eq!(
        f.mean_time_to_resolve,
        Some(Duration::from_secs(46 * 3600 + 20 * 60))
    );

    assert_eq!(f.per_day.len(), TREND_DAYS);
    assert_eq!(f.per_day[0].0, day(4, 15));
    assert_eq!(f.per_day[29].0, day(5, 14));
    assert!(
        f.per_day
            .windows(2)
            .all(|w| w[0].0.succ_opt() == Some(w[1].0))
    );
    let series: Vec<&str> = f.per_day[0].1.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        series,
        [
            "Bogus",
            "High",
            "Medium",
            "Low",
            "Informational",
            "UnSpecified"
        ]
    );
    assert!(f.per_day.iter().all(|(_, row)| row.len() == series.len()));
    let counts = |d: NaiveDate| -> Vec<usize> {
        f.per_day
            .iter()
            .find(|(date, _)| *date == d)
            .map(|(_, row)| row.iter().map(|(_, n)| *n).collect())
            .unwrap()
    };
    assert_eq!(counts(day(5, 14)), [0, 2, 0, 1, 0, 1]);
    assert_eq!(counts(day(5, 13)), [1, 0, 0, 0, 0, 0]);
    assert_eq!(counts(day(5, 12)), [0, 0, 0, 1, 0, 0]);
    assert_eq!(counts(day(5, 11)), [0, 0, 1, 0, 0, 0]);
    assert_eq!(counts(day(5, 9)), [0, 0, 1, 0, 0, 0]);
    assert_eq!(counts(day(5, 4)), [0, 0, 0, 0, 1, 0]);
    let total: usize = f
        .per_day
        .iter()
        .flat_map(|(_, row)| row.iter().map(|(_, n)| n))
        .sum();
    assert_eq!(total, 9, "all but a4 and a6, created over 30 days ago");
}

#[test]
fn html_and_markdown_show_the_handcrafted_numbers() {
    let alerts = handcrafted();
    let r = render(&input(&alerts));
    // The most recent open High alerts: a9 (clamped to now) before a1.
    let a9 = r.html.find("Alert a9").unwrap();
    let a1 = r.html.find("Alert a1<").unwrap();
    assert!(a9 < a1);
    assert!(!r.html.contains("Alert a4"), "a4 is resolved");
    assert!(r.html.contains("<div class=\"n\">1 d 22 h</div>"));
    assert!(r.markdown.contains("| New in the last 24 hours | 4 |"));
    assert!(
        r.markdown
            .contains("| Older alerts updated in window | 3 |")
    );
    assert!(r.markdown.contains("| Resolved in window | 3 |"));
    assert!(r.markdown.contains("| Open now | 6 |"));
    assert!(
        r.markdown
            .contains("| Mean time to resolve (last 30 days, 3 alerts) | 1 d 22 h |")
    );
    assert!(r.markdown.contains("| < 1 day | 3 | 50.0% |"));
    assert!(r.markdown.contains("| 1 | Execution | 4 |"));
    // The Markdown per-day table: 14 days, newest first, with the unknown series as a column.
    assert!(
        r.markdown.contains(
            "| Date | Bogus | High | Medium | Low | Informational | UnSpecified | Total |"
        )
    );
    assert!(
        r.markdown
            .contains("| 2026-05-14 Thu | 0 | 2 | 0 | 1 | 0 | 1 | 4 |")
    );
    assert_eq!(
        r.markdown.matches("| 2026-").count(),
        MARKDOWN_DAYS + 3,
        "14 days + 3 recent High (a6's unknown severity counts as above High)"
    );
    assert!(
        !r.markdown.contains("| 2026-04-30"),
        "only the last 14 days"
    );
}

#[test]
fn unknown_severities_are_shown_not_dropped() {
    let mut alerts = handcrafted();
    alerts.push(alert(
        "x",
        "Catastrophic",
        "New",
        Some(hours(1)),
        hours(1),
        None,
        None,
        None,
    ));
    let r = render(&input(&alerts));
    for s in ["Critical", "Catastrophic"] {
        assert!(
            r.figures
                .open_by_severity
                .iter()
                .any(|(k, n)| k == s && *n == 1)
        );
        assert!(
            r.html.contains(&format!("{s}</td>")),
            "{s} in the severity table"
        );
        assert!(
            r.markdown.contains(&format!("| {s} | 1 |")),
            "{s} in Markdown"
        );
    }
    // In the chart's legend too, and case variants of known severities are not unknown.
    assert!(r.html.contains("Catastrophic (1)"));
    alerts.push(alert(
        "y",
        "HIGH",
        "New",
        Some(hours(1)),
        hours(1),
        None,
        None,
        None,
    ));
    let f = render(&input(&alerts)).figures;
    // Unknown ones first (above High), alphabetically; then High, whatever its case.
    assert_eq!(f.open_by_severity[0].0, "Catastrophic");
    assert_eq!(f.open_by_severity[1].0, "Critical");
    assert_eq!(f.open_by_severity[2], ("High".to_owned(), 3));
    assert!(!f.open_by_severity.iter().any(|(k, _)| k == "HIGH"));
}

#[test]
fn many_unknown_severities_are_folded_in_the_chart_only() {
    let alerts: Vec<AlertSummary> = (0..20)
        .map(|i| {
            alert(
                &format!("u{i}"),
                &format!("Sev{i:02}"),
                "New",
                Some(hours(1)),
                hours(1),
                None,
                None,
                None,
            )
        })
        .collect();
    let f = render(&input(&alerts)).figures;
    assert_eq!(
        f.open_by_severity.len(),
        5 + 20,
        "every unknown severity has a row"
    );
    let row = &f.per_day[TREND_DAYS - 1].1;
    assert_eq!(row.len(), 5 + MAX_EXTRA_SERIES + 1);
    assert_eq!(row[0].0, "Sev00");
    assert_eq!(row[MAX_EXTRA_SERIES], (OTHER_SEVERITIES.to_owned(), 15));
    assert_eq!(row.last().unwrap().0, "UnSpecified");
}

const XSS_TITLE: &str = "<script>alert(1)</script>";
const PIPE_DEVICE: &str = "| injected |";

fn hostile() -> Vec<AlertSummary> {
    let mut a = alert(
        "id\"'><b>",
        "High",
        "New<i>",
        Some(hours(1)),
        hours(1),
        None,
        Some("\"><img src=x onerror=alert(1)> https://evil.example/x.png"),
        Some(PIPE_DEVICE),
    );
    a.title = XSS_TITLE.to_owned();
    a.tenant = "O'Brien & <Co>".to_owned();
    let mut b = a.clone();
    b.id = "b".into();
    b.title = "# Heading\n| a | b |\n[click](javascript:alert(1)) `code` <https://evil.example> &lt; *x* _y_ ~z~ \\".into();
    b.device = Some("host\r\nname".into());
    b.category = Some("url(https://evil.example/) @import".into());
    let mut c = b.clone();
    c.id = "c".into();
    c.severity = "<svg onload=alert(1)>".into();
    vec![a, b, c]
}

/// Every tag in the HTML, as (name, attribute names). Panics on a `<` that starts no tag.
fn tags(html: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let inner = rest[..end].trim_start_matches('/').trim_end_matches('/');
        rest = &rest[end + 1..];
        if inner.starts_with("!DOCTYPE") {
            continue;
        }
        let mut parts = inner.split_whitespace();
        let name = parts.next().unwrap().to_owned();
        // Attribute values here never contain spaces except inside quotes: collect names only.
        let attrs = inner
            .split('"')
            .step_by(2)
            .flat_map(|chunk| chunk.split_whitespace())
            .filter_map(|t| t.strip_suffix('='))
            .map(str::to_owned)
            .collect();
        out.push((name, attrs));
    }
    out
}

/// Tags and attributes the renderer writes; anything else came from alert text.
fn assert_only_our_markup(html: &str) {
    const TAGS: &[&str] = &[
        "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "p",
        "span", "b", "div", "section", "table", "thead", "tbody", "tfoot", "tr", "th", "td",
        "footer", "a",
    ];
    const ATTRS: &[&str] = &[
        "lang",
        "charset",
        "http-equiv",
        "content",
        "name",
        "class",
        "style",
        "role",
        "aria-label",
        "title",
        "href",
        "rel",
    ];
    // The CSS is the one place with `<`-free but brace-heavy text; skip it.
    let body = &html[html.find("</style>").unwrap()..];
    let head = &html[..html.find("<style>").unwrap()];
    for part in [head, body] {
        for (name, attrs) in tags(part) {
            assert!(TAGS.contains(&name.as_str()), "unexpected tag <{name}>");
            for a in attrs {
                assert!(
                    ATTRS.contains(&a.as_str()),
                    "unexpected attribute {a} on <{name}>"
                );
            }
        }
    }
}

#[test]
fn hostile_text_is_inert_in_html() {
    let alerts = hostile();
    let html = render(&input(&alerts)).html;
    assert!(!html.contains(XSS_TITLE));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("| injected |"), "pipes mean nothing in HTML");
    assert!(html.contains("O&#39;Brien &amp; &lt;Co&gt;"));
    assert!(html.contains("id&quot;&#39;&gt;&lt;b&gt;"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("<svg onload"));
    assert!(!html.contains("<i>"));
    assert_only_our_markup(&html);
    // The CSP is there as a second line of defence.
    assert!(html.contains("default-src 'none'"));
}

/// The cells of a Markdown table row, split on unescaped pipes.
fn cells(line: &str) -> usize {
    let mut pipes: usize = 0;
    let mut escaped = false;
    for c in line.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '|' {
            pipes += 1;
        }
    }
    pipes.saturating_sub(1)
}

#[test]
fn hostile_text_is_inert_in_markdown() {
    let alerts = hostile();
    let md = render(&input(&alerts)).markdown;
    assert!(!md.contains(XSS_TITLE));
    assert!(md.contains("\\<script\\>alert(1)\\</script\\>"));
    assert!(md.contains("\\| injected \\|"));
    assert!(!md.contains("[click]"));
    assert!(md.contains("\\[click\\](javascript:alert(1))"));
    assert!(md.contains("\\`code\\`"));
    assert!(md.contains("\\<https://evil.example\\>"), "no autolink");
    assert!(md.contains("\\&lt;"), "an entity stays literal text");
    assert!(md.contains("\\*x\\* \\_y\\_ \\~z\\~ \\\\"));
    assert!(
        md.contains("| \\# Heading \\| a \\| b \\|"),
        "leading # escaped, newline → space"
    );
    assert!(md.contains("host  name"));
    assert!(md.contains("O'Brien & \\<Co\\>"));
    // Every row of every table has as many cells as its header.
    let mut expected = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let n = cells(line);
            let want = *expected.get_or_insert(n);
            assert_eq!(n, want, "cell count changed in: {line}");
        } else {
            expected = None;
        }
        assert!(!line.starts_with('#') || line.starts_with("# ") || line.starts_with("## "));
    }
    // No raw HTML tag at all: every `<` is escaped (our own "< 1 day" label aside).
    for line in md.lines().filter(|l| !l.starts_with("| < 1 day")) {
        assert!(!line.replace("\\<", "").contains('<'), "raw < in: {line}");
    }
}

#[test]
fn html_makes_no_external_requests() {
    let alerts = handcrafted();
    let html = render(&input(&alerts)).html;
    for needle in [
        "http://",
        "https://",
        "src=",
        "href=",
        "@import",
        "url(",
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "xlink",
        "@font-face",
    ] {
        assert!(!html.contains(needle), "found {needle}");
    }
    assert_only_our_markup(&html);
    // With hostile data, URLs appear only as escaped text: still no attribute can hold one.
    let alerts = hostile();
    let html = render(&input(&alerts)).html;
    assert!(html.contains("https://evil.example"));
    assert_only_our_markup(&html);
    assert!(
        html.contains("url(https://evil.example/) @import"),
        "shown as text"
    );
    let css = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
    assert!(!css.contains("url(") && !css.contains("@import") && !css.contains("http"));
}

#[test]
fn html_is_a_complete_document() {
    let alerts = handcrafted();
    let html = render(&input(&alerts)).html;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("<title>Defender alerts report — 2026-05-14 06:00 UTC</title>"));
    assert!(html.trim_end().ends_with("</html>"));
    for h in [
        "Open alerts by severity",
        "Open alerts by age",
        "Alerts created per day",
        "Top categories",
        "Top devices",
        "Most recent open High and above alerts",
    ] {
        assert!(html.contains(&format!("<h2>{h}</h2>")), "{h}");
    }
    // 30 days in each of the two charts, each with a tooltip; the legend present.
    assert_eq!(html.matches("<td title=\"").count(), 2 * TREND_DAYS);
    assert!(html.contains("High (2)"));
    assert!(html.contains("by creation date (UTC)"));
    assert!(html.contains("<h2>Open backlog per day</h2>"));
    // Every opened element of these kinds is closed.
    for t in [
        "section", "table", "div", "tr", "td", "span", "title", "p", "a",
    ] {
        let open =
            html.matches(&format!("<{t}>")).count() + html.matches(&format!("<{t} ")).count();
        let close = html.matches(&format!("</{t}>")).count();
        assert_eq!(open, close, "<{t}>");
    }
}

#[test]
fn empty_input_renders() {
    let r = render(&input(&[]));
    let f = &r.figures;
    assert_eq!(
        (f.new_in_window, f.updated_in_window, f.resolved_in_window),
        (0, 0, 0)
    );
    assert_eq!(f.open_by_severity.len(), 5);
    assert!(f.open_by_severity.iter().all(|(_, n)| *n == 0));
    assert_eq!(f.open_by_age.len(), 4);
    assert!(f.top_categories.is_empty() && f.top_devices.is_empty());
    assert_eq!(f.mean_time_to_resolve, None);
    assert_eq!(f.per_day.len(), TREND_DAYS);
    assert!(
        f.per_day
            .iter()
            .all(|(_, row)| row.len() == 5 && row.iter().all(|(_, n)| *n == 0))
    );
    assert!(r.html.contains("No open alerts of High severity or above."));
    assert!(r.html.contains("Tenants <b>none</b>"));
    assert!(
        r.markdown
            .contains("| Mean time to resolve (last 30 days, 0 alerts) | — |")
    );
    assert_only_our_markup(&r.html);
}

#[test]
fn extreme_input_does_not_panic() {
    let max = DateTime::<Utc>::MAX_UTC;
    let min = DateTime::<Utc>::MIN_UTC;
    let long = "x".repeat(100_000);
    let alerts = vec![
        alert(
            "far-future",
            "High",
            "New",
            Some(max),
            max,
            Some(max),
            Some(&long),
            Some(&long),
        ),
        alert(
            "far-past",
            "Low",
            "Resolved",
            Some(min),
            min,
            Some(max),
            None,
            None,
        ),
        alert(
            "backwards",
            "Medium",
            "Resolved",
            Some(max),
            min,
            Some(min),
            None,
            None,
        ),
        alert(
            "\u{0}\u{202E}ctrl\u{7}",
            "\u{1b}[31m",
            "",
            None,
            now(),
            None,
            None,
            None,
        ),
    ];
    for generated_at in [now(), max, min] {
        for window in [Duration::ZERO, Duration::from_secs(1), Duration::MAX] {
            let r = render(&ReportInput {
                generated_at,
                window,
                alerts: &alerts,
                timezone: None,
            });
            assert_eq!(r.figures.per_day.len(), TREND_DAYS);
            assert!(r.html.ends_with("</html>\n"));
        }
    }
    let r = render(&input(&alerts));
    // Long values are cut for display, control and bidi characters neutralised.
    assert!(r.html.len() < 100_000);
    assert!(
        r.html
            .contains(&format!("{}…", "x".repeat(MAX_SHOWN_CHARS)))
    );
    assert!(
        !r.html.contains('\u{0}') && !r.html.contains('\u{202E}') && !r.html.contains('\u{1b}')
    );
    assert!(!r.markdown.contains('\u{0}') && !r.markdown.contains('\u{202E}'));
    // A huge time to resolve saturates rather than overflowing.
    assert!(r.figures.mean_time_to_resolve.is_some());
}

#[test]
fn window_boundaries() {
    let start = hours(24);
    let alerts = vec![
        alert(
            "at-start",
            "Low",
            "New",
            Some(start),
            start,
            Some(start),
            None,
            None,
        ),
        alert(
            "just-before",
            "Low",
            "New",
            Some(start - TimeDelta::seconds(1)),
            start,
            None,
            None,
            None,
        ),
        alert(
            "stale",
            "Low",
            "New",
            Some(start - TimeDelta::seconds(1)),
            start - TimeDelta::seconds(1),
            None,
            None,
            None,
        ),
    ];
    let f = render(&input(&alerts)).figures;
    assert_eq!(f.new_in_window, 1, "the window's start is inside it");
    assert_eq!(f.updated_in_window, 1);
    assert_eq!(f.resolved_in_window, 1);
    // Exactly one day old is "1–7 days"; exactly 30 days is "> 30 days".
    let alerts = vec![
        alert("d1", "Low", "New", Some(hours(24)), now(), None, None, None),
        alert(
            "d30",
            "Low",
            "New",
            Some(hours(30 * 24)),
            now(),
            None,
            None,
            None,
        ),
    ];
    let f = render(&input(&alerts)).figures;
    assert_eq!(
        f.open_by_age,
        pairs(&[
            ("< 1 day", 0),
            ("1–7 days", 1),
            ("7–30 days", 0),
            ("> 30 days", 1)
        ])
    );
}

#[test]
fn top_lists_keep_ten_with_ties_by_name() {
    let alerts: Vec<AlertSummary> = (0..15)
        .flat_map(|i: usize| {
            // Category Cnn appears 1 + i / 2 times: pairs of ties.
            (0..=i / 2).map(move |k| {
                let cat = format!("C{i:02}");
                let dev = format!("d{i:02}");
                alert(
                    &format!("{i}-{k}"),
                    "Low",
                    "Resolved",
                    Some(hours(1)),
                    hours(1),
                    None,
                    Some(&cat),
                    Some(&dev),
                )
            })
        })
        .collect();
    let f = render(&input(&alerts)).figures;
    let names: Vec<&str> = f.top_categories.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "C14", "C12", "C13", "C10", "C11", "C08", "C09", "C06", "C07", "C04"
        ]
    );
    assert_eq!(f.top_categories[0].1, 8);
    assert_eq!(f.top_devices.len(), TOP_N);
    assert_eq!(f.top_devices[9], ("d04".to_owned(), 3));
}

#[test]
fn recent_high_table_keeps_the_twenty_newest() {
    let alerts: Vec<AlertSummary> = (0..30)
        .map(|i| {
            alert(
                &format!("h{i:02}"),
                "High",
                "New",
                Some(hours(i)),
                hours(i),
                None,
                None,
                None,
            )
        })
        .collect();
    let r = render(&input(&alerts));
    assert!(
        r.html
            .contains("The 20 newest of 30 open alerts of High severity and above")
    );
    assert!(r.html.contains("Alert h00<") && r.html.contains("Alert h19<"));
    assert!(!r.html.contains("Alert h20<"));
    assert!(r.html.find("Alert h00<").unwrap() < r.html.find("Alert h19<").unwrap());
    assert_eq!(r.markdown.matches("| Alert h").count(), RECENT_HIGH);
}

#[test]
fn escaping_functions() {
    assert_eq!(
        Html("a&b<c>d\"e'f").to_string(),
        "a&amp;b&lt;c&gt;d&quot;e&#39;f"
    );
    assert_eq!(
        Html("tab\tok\u{202E}x\u{0}").to_string(),
        "tab\tok\u{FFFD}x\u{FFFD}"
    );
    assert_eq!(Md("a|b").to_string(), "a\\|b");
    assert_eq!(Md("# h").to_string(), "\\# h");
    assert_eq!(Md("a # b").to_string(), "a # b", "only a leading # matters");
    assert_eq!(Md("-x").to_string(), "\\-x");
    assert_eq!(
        Md("host_name_1").to_string(),
        "host_name_1",
        "intraword _ is inert"
    );
    assert_eq!(Md("_x_ a_").to_string(), "\\_x\\_ a\\_");
    assert_eq!(Md("a\nb\r\nc").to_string(), "a b  c");
    assert_eq!(
        Md("AT&T &amp; &#60; & x").to_string(),
        "AT\\&T \\&amp; \\&#60; & x"
    );
    assert_eq!(Md("  ").to_string(), "—");
    assert_eq!(
        Md("[a](b) `c` <d> *e* ~f~ \\").to_string(),
        "\\[a\\](b) \\`c\\` \\<d\\> \\*e\\* \\~f\\~ \\\\"
    );
}

#[test]
fn human_formats() {
    assert_eq!(num(0), "0");
    assert_eq!(num(999), "999");
    assert_eq!(num(1000), "1,000");
    assert_eq!(num(1_234_567), "1,234,567");
    assert_eq!(human_window(Duration::from_secs(86_400)), "24 hours");
    assert_eq!(human_window(Duration::from_secs(3_600)), "1 hour");
    assert_eq!(human_window(Duration::from_secs(7 * 86_400)), "7 days");
    assert_eq!(human_window(Duration::from_secs(90 * 60)), "90 minutes");
    assert_eq!(human_window(Duration::from_secs(61)), "61 seconds");
    assert_eq!(
        human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600 + 59)),
        "3 d 4 h"
    );
    assert_eq!(
        human_duration(Duration::from_secs(5 * 3600 + 12 * 60)),
        "5 h 12 min"
    );
    assert_eq!(human_duration(Duration::from_secs(42 * 60)), "42 min");
    assert_eq!(human_duration(Duration::from_secs(59)), "< 1 min");
    assert_eq!(nice_axis(0), (4, 1));
    assert_eq!(nice_axis(3), (3, 1));
    assert_eq!(nice_axis(393), (400, 100));
    assert_eq!(nice_axis(1234), (1500, 500));
    assert!(nice_axis(usize::MAX).1 > 0);
}

/// The rows of the recent High table as (tenant, ID), in the table's order.
fn recent_high_of(alerts: &[AlertSummary]) -> Vec<(String, String)> {
    let mut tally = figures::Tally::new(now(), Duration::from_secs(24 * 3600), chrono_tz::Tz::UTC);
    for a in alerts {
        tally.add(&a.borrowed());
    }
    tally
        .finish()
        .recent_high
        .into_iter()
        .map(|h| (h.tenant, h.id))
        .collect()
}

/// What the table showed when the report sorted every open High alert (before the tally): all
/// of them by creation time (else last update) newest first, then tenant, then ID; the first
/// [`RECENT_HIGH`].
fn recent_high_by_full_sort(alerts: &[AlertSummary]) -> Vec<(String, String)> {
    let mut high: Vec<&AlertSummary> = alerts
        .iter()
        .filter(|a| {
            alert::vocab::Status::parse(&a.status).is_open()
                && alert::vocab::Severity::parse(&a.severity).is_high_or_above()
        })
        .collect();
    high.sort_by(|a, b| {
        let ca = a.created.unwrap_or(a.updated);
        let cb = b.created.unwrap_or(b.updated);
        cb.cmp(&ca)
            .then_with(|| a.tenant.cmp(&b.tenant))
            .then_with(|| a.id.cmp(&b.id))
    });
    high.iter()
        .take(RECENT_HIGH)
        .map(|a| (a.tenant.clone(), a.id.clone()))
        .collect()
}

#[test]
fn recent_high_ties_on_creation_time_are_broken_by_tenant_then_id() {
    // 3 tenants × 10 open High alerts created at the same instant, fed tenant-last and IDs
    // descending, plus 5 older ones: the 20 newest are all of "a", then all of "b", by ID.
    let mut alerts = Vec::new();
    for id in (0..10).rev() {
        for tenant in ["c", "b", "a"] {
            let mut x = alert(
                &format!("x{id}"),
                "High",
                "New",
                Some(hours(3)),
                hours(1),
                None,
                None,
                None,
            );
            x.tenant = tenant.into();
            alerts.push(x);
        }
    }
    for i in 0..5 {
        alerts.push(alert(
            &format!("old{i}"),
            "High",
            "InProgress",
            Some(hours(10 + i)),
            hours(1),
            None,
            None,
            None,
        ));
    }
    let expected: Vec<(String, String)> = ["a", "b"]
        .iter()
        .flat_map(|t| (0..10).map(move |id| ((*t).to_owned(), format!("x{id}"))))
        .collect();
    assert_eq!(recent_high_of(&alerts), expected);
    assert_eq!(recent_high_by_full_sort(&alerts), expected);
    let r = render(&input(&alerts));
    assert!(
        r.html
            .contains("The 20 newest of 35 open alerts of High severity and above")
    );
    // The Markdown table (with a Tenant column) lists them in that order.
    let rows: Vec<&str> = r
        .markdown
        .lines()
        .filter(|l| l.contains("| Alert x"))
        .collect();
    assert_eq!(rows.len(), RECENT_HIGH);
    assert!(rows[0].contains("Alert x0") && rows[0].contains("| a |"));
    assert!(rows[19].contains("Alert x9") && rows[19].contains("| b |"));
}

#[test]
fn a_stored_row_is_read_as_its_summary() {
    let raw = r#"{"id":"da1","title":"Tab\there \"quoted\"","severity":"High","status":"New",
        "category":"Malware","computerDnsName":"WS1.contoso.com","alertCreationTime":"2026-05-14T04:00:00Z",
        "lastUpdateTime":"2026-05-14T05:00:00.1234567Z","resolvedTime":null,"extra":[1,{"x":2}]}"#;
    let mut tally = figures::Tally::new(now(), Duration::from_secs(24 * 3600), chrono_tz::Tz::UTC);
    add_row(&mut tally, "contoso", raw).unwrap();
    let from_row = report_of(tally.finish());
    let summary = AlertSummary {
        tenant: "contoso".into(),
        id: "da1".into(),
        title: "Tab\there \"quoted\"".into(),
        severity: "High".into(),
        status: "New".into(),
        category: Some("Malware".into()),
        device: Some("WS1.contoso.com".into()),
        created: Some(hours(2)),
        updated: hours(1) + TimeDelta::nanoseconds(123_456_700),
        resolved: None,
        web_url: None,
        classification: None,
    };
    assert_eq!(from_row, render(&input(&[summary])));
    // The escapes were read: the quotes are text, the tab (a control character) is a space.
    assert!(from_row.markdown.contains("| Tab here \"quoted\" |"));
}

#[test]
fn a_row_without_the_fields_counts_with_their_defaults() {
    let mut tally = figures::Tally::new(now(), Duration::from_secs(24 * 3600), chrono_tz::Tz::UTC);
    add_row(&mut tally, "t", r#"{"title":7,"severity":null}"#).unwrap();
    assert!(add_row(&mut tally, "t", "not json").is_err());
    let a = tally.finish();
    assert_eq!(a.alerts, 1);
    // No status reads as "Unknown" (open); no severity as UnSpecified; no time as the earliest.
    assert_eq!(a.open_total, 1);
    assert_eq!(a.figures.open_by_severity[4], ("UnSpecified".to_owned(), 1));
    assert_eq!(a.figures.open_by_age[3].1, 1);
}

#[test]
fn text_is_borrowed_unless_it_has_escapes() {
    let raw = |s: &str| serde_json::value::RawValue::from_string(s.to_owned()).unwrap();
    let plain = raw(r#""WS1""#);
    assert!(matches!(text_of(&plain), Some(Cow::Borrowed("WS1"))));
    let escaped = raw(r#""a\"b\u00e9""#);
    assert!(matches!(text_of(&escaped), Some(Cow::Owned(s)) if s == "a\"bé"));
    assert_eq!(text_of(&raw("null")), None);
    assert_eq!(text_of(&raw("12")), None);
    assert_eq!(text_of(&raw(r#"{"a":"b"}"#)), None);
}

mod any_order {
    use proptest::prelude::*;

    use super::*;

    /// An alert with few distinct values, so that ties (same time, severity, category…) are
    /// common; `(tenant, id)` is unique per input, as in a store.
    fn arb_alert(n: usize) -> impl Strategy<Value = AlertSummary> {
        let sev = prop::sample::select(vec![
            "High", "high ", "Medium", "Low", "", "Critical", "Zeta",
        ]);
        let status = prop::sample::select(vec!["New", "InProgress", "Resolved", "resolved", "Odd"]);
        let hour = prop::option::of(prop::sample::select(vec![-5i64, 0, 1, 2, 30, 200, 800]));
        let name = prop::option::of(prop::sample::select(vec!["WS1", "ws1", " ws2 ", "", "Ws3"]));
        (
            sev,
            status,
            hour,
            0i64..900,
            prop::option::of(0i64..900),
            name.clone(),
            name,
            0..3usize,
        )
            .prop_map(
                move |(sev, status, created, updated, resolved, cat, dev, t)| AlertSummary {
                    tenant: ["contoso", "fabrikam", "adatum"][t].into(),
                    id: format!("id{n}"),
                    title: format!("Alert {n}"),
                    severity: sev.into(),
                    status: status.into(),
                    category: cat.map(Into::into),
                    device: dev.map(Into::into),
                    created: created.map(hours),
                    updated: hours(updated),
                    resolved: resolved.map(hours),
                    web_url: None,
                    classification: None,
                },
            )
    }

    fn arb_alerts() -> impl Strategy<Value = Vec<AlertSummary>> {
        (0..60usize).prop_flat_map(|len| {
            (0..len)
                .map(arb_alert)
                .collect::<Vec<_>>()
                .prop_map(|mut v| {
                    // The same ID in two tenants: a tie on ID, (tenant, id) still unique.
                    if v.len() > 1 {
                        v[1].id = "id0".into();
                        if v[1].tenant == v[0].tenant {
                            v[1].tenant = "other".into();
                        }
                    }
                    v
                })
        })
    }

    proptest! {
        #[test]
        fn the_report_does_not_depend_on_the_order_of_the_alerts(
            (alerts, shuffled) in arb_alerts().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let a = render(&input(&alerts));
            let b = render(&input(&shuffled));
            prop_assert_eq!(&a.figures, &b.figures);
            prop_assert_eq!(recent_high_of(&alerts), recent_high_of(&shuffled));
            prop_assert_eq!(recent_high_of(&alerts), recent_high_by_full_sort(&alerts));
            prop_assert_eq!(a, b);
        }
    }
}

/// Five alerts over two windows and two tenants, for the comparisons, the backlog, the
/// classification and the tenant table (figures worked out in the comments).
fn two_windows() -> Vec<AlertSummary> {
    let with = |mut a: AlertSummary, tenant: &str, class: Option<&str>| {
        a.tenant = tenant.into();
        a.classification = class.map(Into::into);
        a
    };
    vec![
        // New in the window (05-14 04:00), open High.
        with(
            alert(
                "n1",
                "High",
                "New",
                Some(hours(2)),
                hours(2),
                None,
                None,
                None,
            ),
            "contoso",
            None,
        ),
        // New in the previous window (05-13 00:00), resolved in this one, true positive.
        with(
            alert(
                "n2",
                "Low",
                "Resolved",
                Some(hours(30)),
                hours(10),
                Some(hours(10)),
                None,
                None,
            ),
            "contoso",
            Some("TruePositive"),
        ),
        // New (05-12 14:00) and resolved (05-13 04:00) in the previous window, false positive.
        with(
            alert(
                "n3",
                "Low",
                "Resolved",
                Some(hours(40)),
                hours(26),
                Some(hours(26)),
                None,
                None,
            ),
            "contoso",
            Some("falsePositive"),
        ),
        // Open since 05-10 02:00, a severity newer than the documented ones.
        with(
            alert(
                "n4",
                "Critical",
                "New",
                Some(hours(100)),
                hours(100),
                None,
                None,
                None,
            ),
            "fabrikam",
            None,
        ),
        // Resolved without resolvedTime: closed at its update (05-14 01:00), not classified.
        with(
            alert(
                "n5",
                "Medium",
                "Resolved",
                Some(hours(50)),
                hours(5),
                None,
                None,
                None,
            ),
            "contoso",
            Some("TruePositive"),
        ),
    ]
}

#[test]
fn tiles_compare_with_the_previous_window_and_the_backlog_with_its_start() {
    let alerts = two_windows();
    let r = render(&input(&alerts));
    let f = &r.figures;
    assert_eq!(
        (f.new_in_window, f.new_in_previous_window),
        (1, 2),
        "n1; n2, n3"
    );
    assert_eq!(
        (f.resolved_in_window, f.resolved_in_previous_window),
        (1, 1),
        "n2; n3"
    );
    assert_eq!(
        f.open_at_window_start, 3,
        "n2, n4, n5 were open at 05-13 06:00"
    );
    assert!(
        r.markdown
            .contains("| New in the last 24 hours | 1 | −1 vs the previous 24 hours |"),
        "{}",
        r.markdown
    );
    assert!(
        r.markdown
            .contains("| Resolved in window | 1 | no change vs the previous 24 hours |")
    );
    assert!(
        r.markdown
            .contains("| Open now | 2 | −1 vs the window's start |")
    );
    assert!(
        r.html
            .contains("<div class=\"d\">−1 vs the previous 24 hours</div>")
    );
}

#[test]
fn the_backlog_counts_each_day_from_creation_until_resolution() {
    let alerts = two_windows();
    let f = render(&input(&alerts)).figures;
    let last: Vec<(NaiveDate, usize)> = f.open_per_day[TREND_DAYS - 6..].to_vec();
    assert_eq!(
        last,
        [
            (day(5, 9), 0),
            (day(5, 10), 1), // n4
            (day(5, 11), 1), // n4
            (day(5, 12), 3), // n4, n3 (resolved the next day), n5
            (day(5, 13), 2), // n4, n5 (n2 was created and resolved that day)
            (day(5, 14), 2), // n4, n1
        ]
    );
    assert_eq!(f.open_per_day.len(), TREND_DAYS);
}

#[test]
fn classification_critical_and_tenants_are_said_not_folded() {
    let alerts = two_windows();
    let r = render(&input(&alerts));
    let f = &r.figures;
    assert_eq!(
        f.classification,
        Classification {
            true_positive: 1,
            false_positive: 1,
            benign: 0,
            unknown: 0
        },
        "n5 has no resolvedTime: not among the resolved of the last 30 days"
    );
    let row = |t: &TenantFigures| {
        (
            t.tenant.clone(),
            t.alerts,
            t.open,
            t.open_high,
            t.new_in_window,
            t.resolved_in_window,
        )
    };
    assert_eq!(
        f.by_tenant.iter().map(row).collect::<Vec<_>>(),
        [
            ("contoso".to_owned(), 4, 1, 1, 1, 1),
            ("fabrikam".to_owned(), 1, 1, 1, 0, 0)
        ]
    );
    assert!(r.html.contains("<h2>By tenant</h2>"));
    assert!(
        r.markdown.contains("| contoso | 4 | 1 | 1 | 1 | 1 |"),
        "{}",
        r.markdown
    );
    // "High and above" is split by name: Critical is never silently a High.
    assert!(
        r.html
            .contains("Open High and above</div><div class=\"d\">Critical 1 · High 1</div>")
    );
    assert!(r.markdown.contains("| True positive | 1 | 50.0% |"));
    // One tenant: no tenant table.
    let one: Vec<AlertSummary> = alerts
        .into_iter()
        .filter(|a| a.tenant == "contoso")
        .collect();
    assert!(!render(&input(&one)).html.contains("By tenant"));
}

#[test]
fn an_alert_links_to_the_portal_only_through_an_https_portal_url() {
    for good in [
        "https://security.microsoft.com/alerts/da1?tid=x",
        "HTTPS://security.microsoft.us/alerts/da1",
    ] {
        assert_eq!(portal_link(good), Some(good));
    }
    for bad in [
        "javascript:alert(1)",
        "JavaScript:alert(1)//https://security.microsoft.com/",
        "http://security.microsoft.com/alerts/da1",
        "https://security.microsoft.com.evil.example/alerts",
        "https://security.microsoft.com@evil.example/alerts",
        "https://evil.example/?security.microsoft.com",
        "https://security.microsoft.com/a\"onmouseover=alert(1)",
        "https://security.microsoft.com/a b",
        "//security.microsoft.com/alerts",
        "",
    ] {
        assert_eq!(portal_link(bad), None, "{bad}");
    }
    let mut a = alert(
        "da1",
        "High",
        "New",
        Some(hours(1)),
        hours(1),
        None,
        None,
        None,
    );
    a.web_url = Some("https://security.microsoft.com/alerts/da1?tid=x&x=1".into());
    let mut b = alert(
        "da2",
        "High",
        "New",
        Some(hours(2)),
        hours(2),
        None,
        None,
        None,
    );
    b.web_url = Some("javascript:alert(1)".into());
    let html = render(&input(&[a, b])).html;
    assert!(html.contains(
        "<a href=\"https://security.microsoft.com/alerts/da1?tid=x&amp;x=1\" rel=\"noreferrer\">Alert da1</a>"
    ));
    assert!(!html.to_ascii_lowercase().contains("javascript:"));
    assert_eq!(html.matches("<a href=").count(), 1);
}

/// A mail body as much as a page: Outlook on Windows renders no inline SVG, and no mail
/// client runs script, so the report uses neither, whatever the alerts hold.
#[test]
fn the_report_has_no_svg_and_no_script() {
    for alerts in [handcrafted(), two_windows(), hostile(), Vec::new()] {
        let html = render(&input(&alerts)).html.to_ascii_lowercase();
        assert!(!html.contains("<svg"), "svg");
        assert!(!html.contains("<script"), "script");
        assert!(
            html.contains("<table class=\"plot\""),
            "the charts are tables"
        );
    }
}

#[test]
fn a_time_zone_moves_days_and_instants_not_the_window() {
    // 23:30 UTC on 05-13 is 01:30 on 05-14 in Berlin (CEST, UTC+2).
    let late = Utc.with_ymd_and_hms(2026, 5, 13, 23, 30, 0).unwrap();
    let alerts = [alert(
        "z1",
        "High",
        "New",
        Some(late),
        late,
        None,
        None,
        None,
    )];
    let utc = render(&input(&alerts));
    let berlin = render(&ReportInput {
        timezone: Some(chrono_tz::Europe::Berlin),
        ..input(&alerts)
    });
    let count_on = |f: &Figures, d: NaiveDate| {
        f.per_day
            .iter()
            .find(|(date, _)| *date == d)
            .map(|(_, row)| row.iter().map(|(_, n)| n).sum::<usize>())
    };
    assert_eq!(count_on(&utc.figures, day(5, 13)), Some(1));
    assert_eq!(count_on(&berlin.figures, day(5, 14)), Some(1));
    assert_eq!(count_on(&berlin.figures, day(5, 13)), Some(0));
    assert_eq!(berlin.figures.new_in_window, utc.figures.new_in_window);
    assert!(
        berlin
            .html
            .contains("<title>Defender alerts report — 2026-05-14 08:00 CEST</title>")
    );
    assert!(berlin.html.contains("by creation date (Europe/Berlin)"));
    assert!(
        berlin.markdown.contains("| 2026-05-14 01:30 | Alert z1 |"),
        "{}",
        berlin.markdown
    );
}

/// One of a thing is said in the singular: "1 alert", never "1 alerts".
#[test]
fn counts_of_one_are_singular() {
    let one = [two_windows().swap_remove(1)];
    let r = render(&input(&one));
    assert!(
        r.html.contains("The 1 alert resolved in the last 30 days."),
        "{}",
        r.html
    );
    assert!(
        r.markdown
            .contains("The 1 alert resolved in the last 30 days.")
    );
    assert!(
        r.html
            .contains("by creation date (UTC), 1 alert; today is partial")
    );
    assert!(!r.html.contains(" 1 alerts") && !r.markdown.contains(" 1 alerts"));
}
