//! The `$filter` language, tested whole: parsing, errors and evaluation.

use super::eval::parse_alert_timestamp;
use super::lex::parse_datetime_literal;
use super::*;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::json;
use serde_json::{Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn sample() -> Map<String, Value> {
    obj(json!({
        "id": "da637472900382838869_1364969609",
        "incidentId": 1126093,
        "investigationId": null,
        "assignedTo": "O'Brien",
        "severity": "High",
        "status": "New",
        "detectionSource": "WindowsDefenderAv",
        "category": "Malware",
        "alertCreationTime": "2021-01-26T20:33:57.7220239Z",
        "lastUpdateTime": "2021-01-26T20:33:59.2Z",
        "firstEventTime": "2021-01-25T16:26:01Z",
        "lastEventTime": "2021-01-25T16:26:02.123Z",
        "resolvedTime": null
    }))
}

fn parse(filter: &str) -> Expr {
    match parse_filter(filter) {
        Ok(e) => e,
        Err(e) => panic!("{filter:?} should parse: {e}"),
    }
}

fn eval(filter: &str, alert: &Map<String, Value>) -> bool {
    parse(filter).matches(alert)
}

fn err(filter: &str) -> String {
    match parse_filter(filter) {
        Ok(e) => panic!("{filter:?} should be rejected, parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(filter: &str, needles: &[&str]) {
    let message = err(filter);
    for needle in needles {
        assert!(
            message.contains(needle),
            "error for {filter:?} is {message:?}, which lacks {needle:?}"
        );
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("bad test timestamp {s}: {e}"),
    }
}

fn cmp(property: Property, op: CmpOp, value: Literal) -> Expr {
    Expr::Compare {
        property,
        op,
        value,
    }
}

fn status_is(s: &str) -> Expr {
    cmp(Property::Status, CmpOp::Eq, Literal::String(s.to_owned()))
}

// --- operators ------------------------------------------------------

#[test]
fn string_operators() {
    let a = sample();
    assert!(eval("status eq 'New'", &a));
    assert!(!eval("status eq 'Resolved'", &a));
    assert!(!eval("status ne 'New'", &a));
    assert!(eval("status ne 'Resolved'", &a));
    // Ordinal order: "New" < "Resolved", "New" > "InProgress".
    assert!(eval("status lt 'Resolved'", &a));
    assert!(eval("status le 'New'", &a));
    assert!(!eval("status le 'InProgress'", &a));
    assert!(eval("status gt 'InProgress'", &a));
    assert!(eval("status ge 'New'", &a));
    assert!(!eval("status ge 'Resolved'", &a));
    assert!(!eval("status gt 'New'", &a));
    assert!(!eval("status lt 'New'", &a));
}

#[test]
fn string_equality_is_case_sensitive() {
    let a = sample();
    assert!(!eval("status eq 'new'", &a));
    assert!(eval("status ne 'NEW'", &a));
}

#[test]
fn every_string_property() {
    let a = sample();
    assert!(eval("id eq 'da637472900382838869_1364969609'", &a));
    assert!(eval("assignedTo eq 'O''Brien'", &a));
    assert!(eval("detectionSource eq 'WindowsDefenderAv'", &a));
    assert!(eval("severity eq 'High'", &a));
    assert!(eval("category eq 'Malware'", &a));
    assert!(!eval("category eq 'Malware '", &a));
}

#[test]
fn integer_operators() {
    let a = sample();
    assert!(eval("incidentId eq 1126093", &a));
    assert!(!eval("incidentId eq 1126094", &a));
    assert!(eval("incidentId ne 1126094", &a));
    assert!(!eval("incidentId ne 1126093", &a));
    assert!(eval("incidentId gt 1126092", &a));
    assert!(!eval("incidentId gt 1126093", &a));
    assert!(eval("incidentId ge 1126093", &a));
    assert!(!eval("incidentId ge 1126094", &a));
    assert!(eval("incidentId lt 1126094", &a));
    assert!(!eval("incidentId lt 1126093", &a));
    assert!(eval("incidentId le 1126093", &a));
    assert!(!eval("incidentId le 1126092", &a));
    // Numeric, not lexicographic: 1126093 > 999.
    assert!(eval("incidentId gt 999", &a));
    assert!(eval("incidentId gt -5", &a));
}

#[test]
fn integer_edge_values() {
    let big = obj(json!({ "incidentId": u64::MAX, "investigationId": 2.5 }));
    assert!(eval("incidentId gt 9223372036854775807", &big));
    assert!(eval("incidentId ne 1", &big));
    assert!(eval("investigationId gt 2", &big));
    assert!(eval("investigationId lt 3", &big));
    assert!(!eval("investigationId eq 2", &big));
    let neg = obj(json!({ "incidentId": -9223372036854775808_i64 }));
    assert!(eval("incidentId eq -9223372036854775808", &neg));
    assert_eq!(
        parse("incidentId eq -42"),
        cmp(Property::IncidentId, CmpOp::Eq, Literal::Integer(-42))
    );
}

#[test]
fn datetime_operators() {
    let a = sample(); // lastUpdateTime 2021-01-26T20:33:59.2Z
    assert!(eval("lastUpdateTime eq 2021-01-26T20:33:59.2Z", &a));
    assert!(!eval("lastUpdateTime ne 2021-01-26T20:33:59.2Z", &a));
    assert!(eval("lastUpdateTime ne 2021-01-26T20:33:59.21Z", &a));
    assert!(eval("lastUpdateTime gt 2021-01-26T20:33:59.1999999Z", &a));
    assert!(!eval("lastUpdateTime gt 2021-01-26T20:33:59.2Z", &a));
    assert!(eval("lastUpdateTime ge 2021-01-26T20:33:59.2Z", &a));
    assert!(!eval("lastUpdateTime ge 2021-01-26T20:33:59.2000001Z", &a));
    assert!(eval("lastUpdateTime lt 2021-01-26T20:33:59.2000001Z", &a));
    assert!(!eval("lastUpdateTime lt 2021-01-26T20:33:59.2Z", &a));
    assert!(eval("lastUpdateTime le 2021-01-26T20:33:59.2Z", &a));
    assert!(!eval("lastUpdateTime le 2021-01-26T20:33:59Z", &a));
    // Chronological, not lexicographic: "...59.2Z" > "...59Z" as instants
    // although '.' < 'Z' as bytes.
    assert!(eval("lastUpdateTime gt 2021-01-26T20:33:59Z", &a));
}

#[test]
fn every_datetime_property() {
    let a = sample();
    assert!(eval(
        "alertCreationTime eq 2021-01-26T20:33:57.7220239Z",
        &a
    ));
    assert!(eval("firstEventTime eq 2021-01-25T16:26:01Z", &a));
    assert!(eval("lastEventTime eq 2021-01-25T16:26:02.123Z", &a));
    assert!(eval("resolvedTime eq null", &a));
}

#[test]
fn timestamp_precision_is_irrelevant_to_equality() {
    let values = [
        "2021-01-26T20:33:59Z",
        "2021-01-26T20:33:59.0Z",
        "2021-01-26T20:33:59.00Z",
        "2021-01-26T20:33:59.000Z",
        "2021-01-26T20:33:59.0000Z",
        "2021-01-26T20:33:59.00000Z",
        "2021-01-26T20:33:59.000000Z",
        "2021-01-26T20:33:59.0000000Z",
        "2021-01-26T20:33:59.000000000Z",
        "2021-01-26T21:33:59+01:00",
    ];
    for value in values {
        let alert = obj(json!({ "lastUpdateTime": value }));
        for literal in values {
            let filter = format!("lastUpdateTime eq {literal}");
            assert!(eval(&filter, &alert), "{value} should equal {literal}");
            let filter = format!("lastUpdateTime ne {literal}");
            assert!(!eval(&filter, &alert), "{value} ne {literal}");
        }
    }
    let sevens = [
        "2021-01-26T20:33:59.2Z",
        "2021-01-26T20:33:59.20Z",
        "2021-01-26T20:33:59.200Z",
        "2021-01-26T20:33:59.2000Z",
        "2021-01-26T20:33:59.20000Z",
        "2021-01-26T20:33:59.200000Z",
        "2021-01-26T20:33:59.2000000Z",
    ];
    for value in sevens {
        let alert = obj(json!({ "lastUpdateTime": value }));
        for literal in sevens {
            assert!(eval(&format!("lastUpdateTime eq {literal}"), &alert));
            assert!(!eval(&format!("lastUpdateTime gt {literal}"), &alert));
            assert!(eval(&format!("lastUpdateTime ge {literal}"), &alert));
        }
    }
}

#[test]
fn one_tick_apart_is_not_equal() {
    let alert = obj(json!({ "lastUpdateTime": "2021-01-26T20:33:57.7220239Z" }));
    assert!(eval(
        "lastUpdateTime gt 2021-01-26T20:33:57.7220238Z",
        &alert
    ));
    assert!(eval(
        "lastUpdateTime lt 2021-01-26T20:33:57.722024Z",
        &alert
    ));
    assert!(eval(
        "lastUpdateTime gt 2021-01-26T20:33:57.722023899Z",
        &alert
    ));
    assert!(eval(
        "lastUpdateTime eq 2021-01-26T20:33:57.722023900Z",
        &alert
    ));
}

// --- datetime literals ---------------------------------------------

#[test]
fn datetime_literal_forms() {
    let midnight = utc("2018-08-01T00:00:00Z");
    for form in [
        "2018-08-01",
        "2018-08-01Z",
        "2018-08-01T00:00Z",
        "2018-08-01T00:00:00Z",
        "2018-08-01t00:00:00z",
        "2018-08-01T00:00:00.0000000Z",
        "2018-08-01T02:00:00+02:00",
        "2018-07-31T19:00:00-05:00",
        "2018-08-01T00:00:00+00:00",
        "2018-08-01T00:00:00-00:00",
    ] {
        assert_eq!(
            parse(&format!("lastUpdateTime ge {form}")),
            cmp(
                Property::LastUpdateTime,
                CmpOp::Ge,
                Literal::DateTime(midnight)
            ),
            "{form}"
        );
    }
}

#[test]
fn datetime_literal_fractions() {
    assert_eq!(
        parse("lastUpdateTime lt 2020-07-20T10:53:50.19Z"),
        cmp(
            Property::LastUpdateTime,
            CmpOp::Lt,
            Literal::DateTime(utc("2020-07-20T10:53:50.190Z"))
        )
    );
    assert_eq!(
        parse("lastUpdateTime lt 2021-01-26T20:33:57.722023912Z"),
        cmp(
            Property::LastUpdateTime,
            CmpOp::Lt,
            Literal::DateTime(utc("2021-01-26T20:33:57.722023912Z"))
        )
    );
}

#[test]
fn datetime_offset_sign_survives_plus_and_space() {
    let expected = Literal::DateTime(utc("2019-11-21T22:00:00Z"));
    for filter in [
        "lastUpdateTime ge 2019-11-22T00:00:00+02:00",
        "lastUpdateTime+ge+2019-11-22T00:00:00+02:00",
        "lastUpdateTime ge 2019-11-22T00:00:00 02:00",
        "lastUpdateTime+ge+2019-11-22T00:00:00+02:00+and+status+eq+'New'",
        "(lastUpdateTime ge 2019-11-22T00:00:00 02:00)",
    ] {
        let expr = parse(filter);
        let first = match &expr {
            Expr::And(terms) => terms.first().cloned(),
            other => Some(other.clone()),
        };
        assert_eq!(
            first,
            Some(cmp(Property::LastUpdateTime, CmpOp::Ge, expected.clone())),
            "{filter}"
        );
    }
}

#[test]
fn datetime_then_plus_is_a_separator() {
    assert_eq!(
        parse("lastUpdateTime+ge+2019-11-22T00:00:00Z+and+incidentId+eq+5"),
        Expr::And(vec![
            cmp(
                Property::LastUpdateTime,
                CmpOp::Ge,
                Literal::DateTime(utc("2019-11-22T00:00:00Z"))
            ),
            cmp(Property::IncidentId, CmpOp::Eq, Literal::Integer(5)),
        ])
    );
    assert_eq!(
        parse("lastUpdateTime+ge+2018-08-01+or+status+eq+'New'"),
        Expr::Or(vec![
            cmp(
                Property::LastUpdateTime,
                CmpOp::Ge,
                Literal::DateTime(utc("2018-08-01T00:00:00Z"))
            ),
            status_is("New"),
        ])
    );
}

#[test]
fn leap_days() {
    let expr = parse("lastUpdateTime eq 2020-02-29T12:00:00Z");
    assert!(expr.matches(&obj(json!({ "lastUpdateTime": "2020-02-29T12:00:00Z" }))));
    assert!(parse_filter("lastUpdateTime eq 2000-02-29").is_ok());
    assert_err("lastUpdateTime eq 2019-02-29", &["2019-02-29"]);
    assert_err("lastUpdateTime eq 1900-02-29", &["1900-02-29"]);
}

#[test]
fn malformed_datetimes_are_rejected_naming_the_literal() {
    for bad in [
        "2019-13-01T00:00:00Z",
        "2019-00-01T00:00:00Z",
        "2019-04-31T00:00:00Z",
        "2019-01-00",
        "2019-01-01T24:00:00Z",
        "2019-01-01T23:60:00Z",
        "2019-01-01T23:59:60Z",
        "2019-01-01T00:00:00",
        "2019-01-01T00:00:00.Z",
        "2019-01-01T00:00:00.1234567890Z",
        "2019-01-01T00:00:00+24:00",
        "2019-01-01T00:00:00+0200",
        "2019-01-01T00:00:00ZZ",
        "2019-01-01T0:00:00Z",
        "2019-1-01",
        "2019-01-01T",
        "2019-01-01Zjunk",
    ] {
        assert_err(
            &format!("lastUpdateTime ge {bad}"),
            &["malformed datetime literal", bad, "position 18"],
        );
    }
}

// --- alert timestamp parsing -----------------------------------------

#[test]
fn alert_timestamps_parse_like_chrono() {
    for s in [
        "2021-01-26T20:33:57.7220239Z",
        "2021-01-26T20:33:57Z",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999999999Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
        "2024-02-29T23:00:00-01:30",
        "2021-01-26t20:33:57.5z",
        "2021-01-26T20:33:57.12345678912345Z",
    ] {
        let expected = DateTime::parse_from_rfc3339(s)
            .map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
            .ok();
        assert!(expected.is_some(), "{s}");
        assert_eq!(parse_alert_timestamp(s), expected, "{s}");
    }
}

#[test]
fn unparseable_alert_values_match_nothing_but_ne_null() {
    for value in [
        json!("not a date"),
        json!("2021-13-01T00:00:00Z"),
        json!(""),
        json!(12345),
        json!(true),
        json!(["2021-01-26T20:33:59Z"]),
        json!({ "t": 1 }),
    ] {
        let alert = obj(json!({ "lastUpdateTime": value }));
        for op in ["eq", "ne", "gt", "ge", "lt", "le"] {
            assert!(
                !eval(&format!("lastUpdateTime {op} 2021-01-26T20:33:59Z"), &alert),
                "{value} {op}"
            );
        }
        assert!(eval("lastUpdateTime ne null", &alert));
        assert!(!eval("lastUpdateTime eq null", &alert));
    }
}

#[test]
fn wrongly_typed_values_do_not_match() {
    let alert = obj(json!({ "status": 5, "incidentId": "5" }));
    assert!(!eval("status eq '5'", &alert));
    assert!(!eval("status ne '5'", &alert));
    assert!(!eval("incidentId eq 5", &alert));
    assert!(!eval("incidentId ne 5", &alert));
    assert!(eval("incidentId ne null", &alert));
}

#[test]
fn leap_second_value_falls_back_to_chrono() {
    // chrono accepts a leap second; it sorts after :59 of that minute.
    let alert = obj(json!({ "lastUpdateTime": "2016-12-31T23:59:60.5Z" }));
    assert!(eval("lastUpdateTime gt 2016-12-31T23:59:59.9Z", &alert));
    assert!(eval("lastUpdateTime lt 2017-01-01T00:00:00.1Z", &alert));
}

// --- nulls -------------------------------------------------------------

#[test]
fn null_semantics() {
    let missing = obj(json!({}));
    let null = obj(json!({ "status": null, "incidentId": null, "resolvedTime": null }));
    for alert in [&missing, &null] {
        assert!(eval("status eq null", alert));
        assert!(!eval("status ne null", alert));
        assert!(!eval("status eq 'New'", alert));
        assert!(eval("status ne 'New'", alert));
        assert!(!eval("status gt 'A'", alert));
        assert!(!eval("status lt 'A'", alert));
        assert!(!eval("status ge 'A'", alert));
        assert!(!eval("status le 'A'", alert));
        assert!(!eval("incidentId eq 1", alert));
        assert!(eval("incidentId ne 1", alert));
        assert!(!eval("incidentId gt -1", alert));
        assert!(!eval("incidentId le 1", alert));
        assert!(eval("resolvedTime eq null", alert));
        assert!(!eval("resolvedTime ge 2000-01-01", alert));
        assert!(!eval("resolvedTime lt 2000-01-01", alert));
        assert!(eval("resolvedTime ne 2000-01-01", alert));
        // Two-valued logic: not negates whatever the comparison yielded.
        assert!(eval("not (resolvedTime ge 2000-01-01)", alert));
    }
    let present = sample();
    assert!(!eval("status eq null", &present));
    assert!(eval("status ne null", &present));
    assert!(eval("incidentId ne null", &present));
    assert!(eval("investigationId eq null", &present));
    assert!(eval("lastUpdateTime ne NULL", &present));
}

#[test]
fn null_literal_parses_for_every_kind() {
    for property in Property::ALL {
        assert_eq!(
            parse(&format!("{property} eq null")),
            cmp(property, CmpOp::Eq, Literal::Null)
        );
    }
}

#[test]
fn null_allows_only_eq_and_ne() {
    for op in ["gt", "ge", "lt", "le"] {
        assert_err(
            &format!("resolvedTime {op} null"),
            &["'", op, "cannot be used with null", "position 13"],
        );
    }
}

// --- logic, precedence and nesting -------------------------------------

#[test]
fn or_binds_looser_than_and() {
    assert_eq!(
        parse("status eq 'a' or status eq 'b' and status eq 'c'"),
        Expr::Or(vec![
            status_is("a"),
            Expr::And(vec![status_is("b"), status_is("c")]),
        ])
    );
    assert_eq!(
        parse("status eq 'a' and status eq 'b' or status eq 'c'"),
        Expr::Or(vec![
            Expr::And(vec![status_is("a"), status_is("b")]),
            status_is("c"),
        ])
    );
    let a = sample(); // status New, severity High
    // true or (false and false) = true; (true or false) and false would be false.
    assert!(eval(
        "status eq 'New' or severity eq 'Low' and category eq 'None'",
        &a
    ));
    assert!(!eval(
        "(status eq 'New' or severity eq 'Low') and category eq 'None'",
        &a
    ));
}

#[test]
fn chains_are_flat() {
    assert_eq!(
        parse("status eq 'a' or status eq 'b' or status eq 'c'"),
        Expr::Or(vec![status_is("a"), status_is("b"), status_is("c")])
    );
    assert_eq!(
        parse("status eq 'a' and status eq 'b' and status eq 'c'"),
        Expr::And(vec![status_is("a"), status_is("b"), status_is("c")])
    );
    // A long chain is neither deep nor slow.
    let long = vec!["status eq 'x'"; 5000].join(" or ") + " or status eq 'New'";
    assert!(eval(&long, &sample()));
}

#[test]
fn and_or_truth_tables() {
    let a = sample();
    let t = "status eq 'New'";
    let f = "status eq 'Old'";
    for (x, xv) in [(t, true), (f, false)] {
        for (y, yv) in [(t, true), (f, false)] {
            assert_eq!(eval(&format!("{x} and {y}"), &a), xv && yv);
            assert_eq!(eval(&format!("{x} or {y}"), &a), xv || yv);
        }
    }
}

#[test]
fn not_operator() {
    let a = sample();
    assert!(!eval("not status eq 'New'", &a));
    assert!(eval("not status eq 'Old'", &a));
    assert!(eval("not not status eq 'New'", &a));
    assert!(eval("not (status eq 'Old' or severity eq 'Low')", &a));
    assert!(!eval("not (status eq 'New' or severity eq 'Low')", &a));
    assert!(eval("NOT(status eq 'Old')", &a));
    // not binds tighter than and / or.
    assert_eq!(
        parse("not status eq 'a' and status eq 'b'"),
        Expr::And(vec![Expr::Not(Box::new(status_is("a"))), status_is("b")])
    );
    assert_eq!(
        parse("not status eq 'a' or status eq 'b'"),
        Expr::Or(vec![Expr::Not(Box::new(status_is("a"))), status_is("b")])
    );
    assert_eq!(
        parse("status eq 'a' and not status eq 'b'"),
        Expr::And(vec![status_is("a"), Expr::Not(Box::new(status_is("b")))])
    );
}

#[test]
fn nested_parentheses() {
    let a = sample();
    assert!(eval("((((status eq 'New'))))", &a));
    assert!(eval(
        "(status eq 'Old' or (severity eq 'High' and (category eq 'Malware' or (id eq 'x'))))",
        &a
    ));
    assert_eq!(
        parse("(status eq 'a' or status eq 'b') and status eq 'c'"),
        Expr::And(vec![
            Expr::Or(vec![status_is("a"), status_is("b")]),
            status_is("c"),
        ])
    );
    let deep = format!(
        "{}status eq 'New'{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(eval(&deep, &a));
    let deep_not = format!("{}status eq 'New'", "not ".repeat(MAX_DEPTH));
    assert_eq!(eval(&deep_not, &a), MAX_DEPTH.is_multiple_of(2));
}

#[test]
fn nesting_limit() {
    let too_deep = format!(
        "{}status eq 'New'{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_err(
        &too_deep,
        &["more than 128 levels", &format!("position {MAX_DEPTH}")],
    );
    let mixed = format!("{}status eq 'New'", "not (".repeat(MAX_DEPTH));
    assert_err(&mixed, &["levels deep"]);
    // A hostile filter fails cleanly instead of overflowing the stack.
    let hostile = "(".repeat(1_000_000);
    assert_err(&hostile, &["levels deep"]);
}

#[test]
fn deepest_filters_fit_half_a_default_thread_stack() {
    // Spawned threads and tokio workers get 2 MiB; even unoptimised, the
    // deepest accepted filters must fit comfortably in half of that.
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let parens = format!(
                "{}status eq 'New'{}",
                "(".repeat(MAX_DEPTH),
                ")".repeat(MAX_DEPTH)
            );
            let nots = format!("{}status eq 'Old'", "not ".repeat(MAX_DEPTH - 1));
            let mut results = Vec::new();
            for filter in [parens, nots] {
                let expr = parse_filter(&filter).map_err(|e| e.message)?;
                results.push(expr.matches(&sample()));
            }
            Ok::<Vec<bool>, String>(results)
        });
    let result = handle.map(|h| h.join());
    // MAX_DEPTH - 1 is odd, so the nots negate "status eq 'Old'" to true.
    assert!(
        matches!(&result, Ok(Ok(Ok(v))) if v == &[true, true]),
        "{result:?}"
    );
}

// --- lexical details ------------------------------------------------------

#[test]
fn microsoft_examples() {
    let a = obj(json!({ "lastUpdateTime": "2019-11-22T00:00:00.0000001Z" }));
    assert!(eval("lastUpdateTime+ge+2019-11-22T00:00:00Z", &a));
    assert!(eval("lastUpdateTime ge 2019-11-22T00:00:00Z", &a));
    assert!(!eval("lastUpdateTime+lt+2019-11-22T00:00:00Z", &a));

    let filter = "alertCreationTime gt 2022-02-17T14:39:01.391001Z and \
                  ((status eq 'New') or (status eq 'Resolved')) and \
                  ((severity eq 'Informational') or (severity eq 'High'))";
    assert_eq!(
        parse(filter),
        Expr::And(vec![
            cmp(
                Property::AlertCreationTime,
                CmpOp::Gt,
                Literal::DateTime(utc("2022-02-17T14:39:01.391001Z"))
            ),
            Expr::Or(vec![status_is("New"), status_is("Resolved")]),
            Expr::Or(vec![
                cmp(
                    Property::Severity,
                    CmpOp::Eq,
                    Literal::String("Informational".into())
                ),
                cmp(
                    Property::Severity,
                    CmpOp::Eq,
                    Literal::String("High".into())
                ),
            ]),
        ])
    );
    let alert = |created: &str, status: &str, severity: &str| {
        obj(json!({
            "alertCreationTime": created,
            "status": status,
            "severity": severity,
        }))
    };
    let expr = parse(filter);
    assert!(expr.matches(&alert("2022-02-17T14:39:01.3910011Z", "New", "High")));
    assert!(expr.matches(&alert("2023-01-01T00:00:00Z", "Resolved", "Informational")));
    assert!(!expr.matches(&alert("2022-02-17T14:39:01.391001Z", "New", "High")));
    assert!(!expr.matches(&alert("2022-02-17T14:39:01.391Z", "New", "High")));
    assert!(!expr.matches(&alert("2023-01-01T00:00:00Z", "InProgress", "High")));
    assert!(!expr.matches(&alert("2023-01-01T00:00:00Z", "New", "Medium")));
    // The same filter with every space written as `+`.
    assert_eq!(parse(&filter.replace(' ', "+")), expr);
}

#[test]
fn whitespace_and_plus_are_interchangeable() {
    let expected = parse("status eq 'New' and incidentId ne 5");
    for variant in [
        "status+eq+'New'+and+incidentId+ne+5",
        "  status   eq\t'New'\nand\r\nincidentId ne 5  ",
        "+++status+ +eq++'New' and+incidentId ne+5+",
        "status eq'New'and incidentId ne 5",
    ] {
        assert_eq!(parse(variant), expected, "{variant:?}");
    }
    // Inside a string, `+` is a plus sign.
    assert_eq!(
        parse("category eq 'a+b'"),
        cmp(Property::Category, CmpOp::Eq, Literal::String("a+b".into()))
    );
}

#[test]
fn quotes_in_strings() {
    assert_eq!(
        parse("assignedTo eq 'O''Brien'"),
        cmp(
            Property::AssignedTo,
            CmpOp::Eq,
            Literal::String("O'Brien".into())
        )
    );
    assert!(eval("assignedTo eq 'O''Brien'", &sample()));
    assert!(!eval("assignedTo eq 'OBrien'", &sample()));
    for (literal, value) in [
        ("''", ""),
        ("''''", "'"),
        ("''''''", "''"),
        ("'a''''b'", "a''b"),
        ("'it''s ( and ) and or'", "it's ( and ) and or"),
        ("'Zoë ✓'", "Zoë ✓"),
    ] {
        assert_eq!(
            parse(&format!("category eq {literal}")),
            cmp(Property::Category, CmpOp::Eq, Literal::String(value.into())),
            "{literal}"
        );
    }
}

#[test]
fn keywords_and_properties_are_case_insensitive() {
    let a = sample();
    assert!(eval("STATUS EQ 'New' AnD SeVeRiTy Eq 'High'", &a));
    assert!(eval("status Ne 'x' OR status eq 'y'", &a));
    assert!(eval("LASTUPDATETIME GE 2021-01-01", &a));
    assert!(eval("incidentid Gt 1 and INVESTIGATIONID eq Null", &a));
    assert!(eval("asssignedTo eq 'O''Brien'", &a));
    assert!(eval("ASSSIGNEDTO eq 'O''Brien'", &a));
    assert_eq!(parse("asssignedTo eq 'x'"), parse("assignedTo eq 'x'"));
}

// --- errors ----------------------------------------------------------------

#[test]
fn empty_filters() {
    for empty in ["", "   ", "+++", "\t\n"] {
        assert_err(empty, &["empty"]);
    }
}

#[test]
fn unknown_property() {
    assert_err(
        "foo eq 'bar'",
        &[
            "Could not find a property named 'foo' on type 'Alert'",
            "position 0",
        ],
    );
    assert_err(
        "status eq 'New' and machineId eq 'x'",
        &["'machineId'", "position 20"],
    );
    assert_err("assigned_To eq 'x'", &["'assigned_To'"]);
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, &[&str])] = &[
        // unbalanced parentheses
        (
            "(status eq 'New'",
            &[
                "expected ')'",
                "'(' at position 0",
                "end of filter",
                "position 16",
            ],
        ),
        ("((status eq 'New')", &["expected ')'", "position 18"]),
        (
            "status eq 'New')",
            &["')' without a matching '('", "position 15"],
        ),
        (
            "(status eq 'New'))",
            &["')' without a matching '('", "position 17"],
        ),
        (
            "()",
            &["expected a property name or '('", "')'", "position 1"],
        ),
        (")", &["found ')'", "position 0"]),
        // missing operands
        (
            "status eq",
            &[
                "expected a literal value after 'status eq'",
                "end of filter",
                "position 9",
            ],
        ),
        (
            "status",
            &[
                "expected a comparison operator",
                "end of filter",
                "position 6",
            ],
        ),
        (
            "status eq 'New' and",
            &["expected a comparison", "end of filter", "position 19"],
        ),
        ("status eq 'New' or", &["end of filter", "position 18"]),
        (
            "and status eq 'New'",
            &["missing operand before 'and'", "position 0"],
        ),
        (
            "status eq 'New' and or status eq 'x'",
            &["missing operand before 'or'", "position 20"],
        ),
        ("not", &["end of filter", "position 3"]),
        (
            "status eq and",
            &["expected a literal value", "'and'", "position 10"],
        ),
        (
            "status eq )",
            &["expected a literal value", "')'", "position 10"],
        ),
        // trailing garbage
        (
            "status eq 'New' foo",
            &["unexpected 'foo'", "expected 'and', 'or'", "position 16"],
        ),
        (
            "status eq 'New' 'x'",
            &["unexpected string literal 'x'", "position 16"],
        ),
        (
            "status eq 'New' (status eq 'x')",
            &["unexpected '('", "position 16"],
        ),
        (
            "incidentId eq 5 6",
            &["unexpected integer literal 6", "position 16"],
        ),
        // unknown or unsupported operators
        (
            "status equals 'New'",
            &[
                "unknown operator 'equals'",
                "eq, ne, gt, ge, lt, le",
                "position 7",
            ],
        ),
        (
            "status == 'New'",
            &["unexpected character '='", "position 7"],
        ),
        (
            "status in ('New')",
            &["operator 'in' is not supported", "position 7"],
        ),
        (
            "incidentId add 5 eq 6",
            &["operator 'add' is not supported"],
        ),
        (
            "status 'New'",
            &[
                "expected a comparison operator",
                "string literal 'New'",
                "position 7",
            ],
        ),
        (
            "contains(status, 'New')",
            &["function 'contains' is not supported", "position 0"],
        ),
        (
            "status eq 'New', severity eq 'High'",
            &["unexpected ','", "position 15"],
        ),
        (
            "status eq 'New' && severity eq 'High'",
            &["unexpected character '&'", "position 16"],
        ),
        (
            "status/name eq 'x'",
            &["unexpected character '/'", "position 6"],
        ),
        (
            "status eq \"New\"",
            &["unexpected character '\"'", "position 10"],
        ),
        ("státus eq 'x'", &["unexpected character 'á'", "position 2"]),
        // unterminated strings
        (
            "status eq 'New",
            &["unterminated string literal", "position 10"],
        ),
        (
            "status eq 'O''Brien",
            &["unterminated string literal", "position 10"],
        ),
        (
            "status eq '",
            &["unterminated string literal", "position 10"],
        ),
        // malformed numbers
        (
            "incidentId eq 1.5",
            &["invalid numeric literal 1.5", "position 14"],
        ),
        ("incidentId eq 12abc", &["invalid numeric literal 12abc"]),
        (
            "incidentId eq 99999999999999999999",
            &["out of range", "99999999999999999999"],
        ),
        (
            "incidentId eq -",
            &["unexpected character '-'", "position 14"],
        ),
        ("incidentId eq --5", &["invalid numeric literal --5"]),
        // literals and properties in the wrong place
        (
            "'New' eq status",
            &[
                "expected a property name or '('",
                "string literal 'New'",
                "position 0",
            ],
        ),
        (
            "null eq status",
            &["expected a property name on the left", "'null'"],
        ),
        (
            "lastUpdateTime gt firstEventTime",
            &[
                "comparing two properties",
                "'firstEventTime'",
                "position 18",
            ],
        ),
        (
            "status eq xyz",
            &["expected a literal value", "'xyz'", "position 10"],
        ),
        (
            "status eq datetime'2019-01-01'",
            &["expected a literal value", "'datetime'"],
        ),
    ];
    for (filter, needles) in cases {
        assert_err(filter, needles);
    }
}

#[test]
fn type_errors() {
    let cases: &[(&str, &[&str])] = &[
        (
            "lastUpdateTime ge '2019-11-22T00:00:00Z'",
            &[
                "datetime property 'lastUpdateTime'",
                "string literal '2019-11-22T00:00:00Z'",
                "position 18",
            ],
        ),
        (
            "lastUpdateTime ge 5",
            &["datetime property", "integer literal 5"],
        ),
        (
            "status eq 2019-11-22T00:00:00Z",
            &[
                "string property 'status'",
                "datetime literal 2019-11-22T00:00:00Z",
                "position 10",
            ],
        ),
        (
            "status eq 5",
            &["string property 'status'", "integer literal 5"],
        ),
        (
            "incidentId eq '5'",
            &["integer property 'incidentId'", "string literal '5'"],
        ),
        (
            "incidentId eq 2019-11-22",
            &["integer property", "datetime literal 2019-11-22"],
        ),
        ("status eq true", &["string property", "'true'"]),
        ("incidentId ne FALSE", &["integer property", "'FALSE'"]),
        ("resolvedTime eq true", &["datetime property", "'true'"]),
    ];
    for (filter, needles) in cases {
        assert_err(filter, needles);
    }
}

#[test]
fn error_is_a_std_error_displaying_its_message() {
    let e = match parse_filter("foo eq 1") {
        Err(e) => e,
        Ok(expr) => panic!("parsed as {expr:?}"),
    };
    let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
    assert_eq!(boxed.to_string(), e.message);
}

// --- robustness --------------------------------------------------------------

const VALID: &[&str] = &[
    "alertCreationTime gt 2022-02-17T14:39:01.391001Z and ((status eq 'New') or (status eq 'Resolved')) and ((severity eq 'Informational') or (severity eq 'High'))",
    "lastUpdateTime+ge+2019-11-22T00:00:00+02:00+and+not+assignedTo+eq+'O''Brien'",
    "not (incidentId ge -5 or resolvedTime eq null) and lastEventTime lt 2018-08-01",
    "lastUpdateTime ge 2019-11-22T00:00:00 02:00 or firstEventTime le 2018-08-01Z",
];

fn evaluate_on_odd_alerts(expr: &Expr) {
    for alert in [
        sample(),
        obj(json!({})),
        obj(json!({
            "status": 1, "incidentId": "x", "lastUpdateTime": 5,
            "resolvedTime": "garbage", "severity": [1], "investigationId": 1e300
        })),
    ] {
        let _ = expr.matches(&alert);
    }
}

#[test]
fn truncations_and_deletions_never_panic() {
    for filter in VALID {
        assert!(parse_filter(filter).is_ok(), "{filter}");
        for (i, _) in filter.char_indices() {
            if let Ok(e) = parse_filter(&filter[..i]) {
                evaluate_on_odd_alerts(&e);
            }
            let mut deleted = filter.to_string();
            deleted.remove(i);
            if let Ok(e) = parse_filter(&deleted) {
                evaluate_on_odd_alerts(&e);
            }
            for insert in ["(", ")", "'", "+", " ", "-", ":", "9", "Z", "é"] {
                let mut inserted = filter.to_string();
                inserted.insert_str(i, insert);
                if let Ok(e) = parse_filter(&inserted) {
                    evaluate_on_odd_alerts(&e);
                }
            }
        }
    }
}

fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "(",
        ")",
        "not",
        "and",
        "or",
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "null",
        "true",
        "status",
        "incidentId",
        "lastUpdateTime",
        "asssignedTo",
        "foo",
        "'New'",
        "'O''B",
        "''",
        "'",
        "5",
        "-7",
        "1.5",
        "2019-11-22T00:00:00Z",
        "2019-11-22",
        "2019-11-22T00:00",
        "2019-13-01",
        "+02:00",
        "02:00",
        "-",
        "+",
        "  ",
        "Z",
        ".",
        ":",
        "é",
    ]);
    prop::collection::vec((token, prop::sample::select(vec!["", " ", "+"])), 0..24).prop_map(
        |parts| {
            parts
                .into_iter()
                .map(|(t, sep)| format!("{t}{sep}"))
                .collect()
        },
    )
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        if let Ok(e) = parse_filter(&s) {
            evaluate_on_odd_alerts(&e);
        }
    }

    #[test]
    fn token_soup_never_panics(s in token_soup()) {
        if let Ok(e) = parse_filter(&s) {
            evaluate_on_odd_alerts(&e);
        }
    }

    #[test]
    fn timestamp_parsers_agree_with_chrono(
        secs in -62_135_596_800i64..253_402_214_400,
        nanos in 0u32..1_000_000_000,
        digits in 0usize..=9,
        offset_minutes in -1439i32..=1439,
    ) {
        let truncated = nanos - nanos % 10u32.pow(9 - digits as u32);
        let Some(t) = DateTime::from_timestamp(secs, truncated) else {
            return Ok(());
        };
        let Some(zone) = chrono::FixedOffset::east_opt(offset_minutes * 60) else {
            return Ok(());
        };
        let fraction = format!("{:09}", truncated);
        let local = t.with_timezone(&zone);
        let text = if digits == 0 {
            local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
        } else {
            format!("{}.{}{}", local.format("%Y-%m-%dT%H:%M:%S"), &fraction[..digits], local.format("%:z"))
        };
        prop_assert_eq!(parse_alert_timestamp(&text), Some((t.timestamp(), truncated)), "{}", text);
        let literal = parse_datetime_literal(&text);
        prop_assert_eq!(literal, Some(t), "{}", text);
    }
}

#[test]
fn graph_dialect_has_graph_names_and_in() {
    let g = |f: &str| parse_filter_in(f, Dialect::Graph);
    let alert = obj(json!({
        "serviceSource": "microsoftDefenderForOffice365",
        "lastUpdateDateTime": "2024-05-01T10:00:00.5Z",
        "createdDateTime": null,
        "status": "inProgress",
    }));
    let m = |f: &str| g(f).unwrap_or_else(|e| panic!("{f}: {e}")).matches(&alert);
    assert!(m("lastUpdateDateTime gt 2024-05-01T10:00:00Z"));
    assert!(m("createdDateTime eq null"));
    assert!(!m("createdDateTime ne null"));
    assert!(m(
        "serviceSource in ('microsoftDefenderForEndpoint', 'microsoftDefenderForOffice365')"
    ));
    assert!(!m("serviceSource in ('microsoftDefenderForEndpoint')"));
    assert!(m(
        "serviceSource eq 'x' or serviceSource eq 'microsoftDefenderForOffice365'"
    ));
    assert!(m("status eq 'inProgress' and not (severity eq 'high')"));
    // Defender's names are not Graph's, and the other way round.
    for bad in [
        "lastUpdateTime gt 2024-05-01T10:00:00Z",
        "investigationState eq 'Queued'",
        "serviceSource in ()",
        "serviceSource in ('a' 'b')",
        "lastUpdateDateTime in ('a')",
    ] {
        assert!(g(bad).is_err(), "{bad} should be refused");
    }
    assert!(
        g("investigationState eq 'Queued'")
            .unwrap_err()
            .to_string()
            .contains("microsoft.graph.security.alert")
    );
    assert!(parse_filter("lastUpdateDateTime gt 2024-05-01T10:00:00Z").is_err());
    assert!(parse_filter("serviceSource eq 'x'").is_err());
}

#[test]
fn floor_of_is_the_earliest_instant_every_way_of_matching_needs() {
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let floor = |f: &str| parse_filter(f).unwrap().floor_of(Property::LastUpdateTime);
    let (a, b) = ("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
    assert_eq!(floor(&format!("lastUpdateTime ge {a}")), Some(t(a)));
    assert_eq!(floor(&format!("lastUpdateTime gt {a}")), Some(t(a)));
    assert_eq!(floor(&format!("lastUpdateTime eq {a}")), Some(t(a)));
    assert_eq!(floor(&format!("lastUpdateTime lt {a}")), None);
    assert_eq!(floor(&format!("not (lastUpdateTime ge {a})")), None);
    assert_eq!(floor(&format!("alertCreationTime ge {a}")), None);
    assert_eq!(
        floor(&format!(
            "lastUpdateTime ge {a} and lastUpdateTime ge {b} and status eq 'New'"
        )),
        Some(t(b))
    );
    assert_eq!(
        floor(&format!("lastUpdateTime ge {b} or lastUpdateTime gt {a}")),
        Some(t(a))
    );
    assert_eq!(
        floor(&format!("lastUpdateTime ge {b} or status eq 'New'")),
        None
    );
}

/// The Graph hazard that refuses null comparisons finds one anywhere in a filter, and only there.
#[test]
fn compares_null_finds_a_null_comparison_anywhere() {
    let f = |s: &str| crate::odata::parse_filter_in(s, crate::odata::Dialect::Graph).unwrap();
    assert!(
        f("lastUpdateDateTime eq 2026-01-01T00:00:00Z and createdDateTime eq null").compares_null()
    );
    assert!(f("not (createdDateTime ne null) or severity eq 'high'").compares_null());
    assert!(
        !f(
            "lastUpdateDateTime eq 2026-01-01T00:00:00Z and createdDateTime ge 2025-01-01T00:00:00Z"
        )
        .compares_null()
    );
}
