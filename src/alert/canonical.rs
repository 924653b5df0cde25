//! The canonical JSON of an alert in one pass over its text, without a `serde_json::Value`.
//!
//! The content hash has always been BLAKE3 of `serde_json::to_writer(&Value)` where the `Value`
//! was parsed from the alert's text: keys sorted (serde_json's map is a `BTreeMap`), a duplicate
//! key keeping its last value, strings re-escaped by serde_json, numbers as serde_json's `Number`
//! writes them. Every stored hash depends on that text, so this module must write it byte for
//! byte. Building the `Value` (a `BTreeMap` insert and allocation per key, then its drop) was
//! a third of the import's parser thread; here each object's members are written to a scratch
//! buffer and copied out in key order.
//!
//! Hand-written because no crate writes *serde_json's* canonical form (RFC 8785 / JCS crates
//! format numbers and escape strings differently, which would change every hash). Whatever is
//! unusual is left to serde_json itself: a string with an escape is decoded and re-escaped by
//! serde_json, every number that is not a plain short integer is parsed and written by serde_json,
//! and anything else (invalid JSON, deep nesting, a number beyond a double, a top level that is
//! not an object) returns `None`, for the caller to take the `Value` path, which decides.

use std::borrow::Cow;

/// Deeper than this is left to serde_json (whose own limit is 128 levels).
const MAX_DEPTH: usize = 100;

/// The members of the top-level object, sorted by key, a duplicate key keeping its last value:
/// each key with its value's text as it stands in the input.
pub(crate) struct Top<'a> {
    members: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> Top<'a> {
    /// The text of `key`'s value, as in the input.
    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.members
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| self.members[i].1)
    }

    /// Whether the object has `key` (whatever its value, `null` included).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `key`'s value when it is a string, unescaped.
    pub(crate) fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        string_value(self.get(key)?)
    }
}

/// A JSON value's text as a string, unescaped; `None` when it is not a string.
pub(crate) fn string_value(v: &str) -> Option<Cow<'_, str>> {
    if !v.starts_with('"') {
        return None;
    }
    if v.contains('\\') {
        serde_json::from_str::<String>(v).ok().map(Cow::Owned)
    } else {
        v.get(1..v.len().checked_sub(1)?).map(Cow::Borrowed)
    }
}

/// Writes the canonical JSON of `text`, which must be one object, to `out` (cleared first), and
/// returns its top-level members; `None` when the text is left to serde_json (module docs).
pub(crate) fn canonicalise<'a>(text: &'a str, out: &mut Vec<u8>) -> Option<Top<'a>> {
    out.clear();
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
        bufs: Vec::new(),
        top: Vec::new(),
    };
    p.ws();
    if p.peek()? != b'{' {
        return None;
    }
    p.object(out)?;
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    Some(Top { members: p.top })
}

/// One member of an object being read: its key, where its canonical value is in the scratch
/// buffer, and where its value's text is in the input.
struct Member<'a> {
    key: Cow<'a, str>,
    canon: (usize, usize),
    text: (usize, usize),
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// Scratch buffers, one per nesting level, reused by sibling objects.
    bufs: Vec<Vec<u8>>,
    /// The top-level members once read.
    top: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON whitespace (serde_json's four bytes).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string at `i` (its opening quote), unescaped: borrowed when it has no escape.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i;
        let mut j = start + 1;
        let mut escaped = false;
        let end = loop {
            let k = j + memchr::memchr2(b'"', b'\\', &self.b[j..])?;
            if self.b[k] == b'"' {
                break k;
            }
            escaped = true;
            j = k + 2;
            if j > self.b.len() {
                return None;
            }
        };
        self.i = end + 1;
        if escaped {
            // serde_json decodes (and so checks) the escapes and refuses control characters.
            serde_json::from_str::<String>(&self.s[start..=end])
                .ok()
                .map(Cow::Owned)
        } else if self.b[start + 1..end].iter().any(|&c| c < 0x20) {
            // serde_json refuses a raw control character in a string.
            None
        } else {
            Some(Cow::Borrowed(&self.s[start + 1..end]))
        }
    }

    /// Writes a string as serde_json does. The `Cow`'s variant is the point: borrowed means the
    /// input had no escape, so the text can be copied as it stands.
    #[allow(clippy::ptr_arg)]
    fn write_string(out: &mut Vec<u8>, s: &Cow<'_, str>) {
        match s {
            // No escape in the input and no control character: serde_json writes it unchanged.
            Cow::Borrowed(s) => {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            }
            // Writing into a Vec cannot fail.
            Cow::Owned(s) => {
                let _ = serde_json::to_writer(&mut *out, s);
            }
        }
    }

    fn value(&mut self, out: &mut Vec<u8>) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(out),
            b'[' => self.array(out),
            b'"' => {
                let s = self.string()?;
                Self::write_string(out, &s);
                Some(())
            }
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'n' => self.literal(b"null", out),
            b'-' | b'0'..=b'9' => self.number(out),
            _ => None,
        }
    }

    fn literal(&mut self, word: &'static [u8], out: &mut Vec<u8>) -> Option<()> {
        if !self.b[self.i..].starts_with(word) {
            return None;
        }
        self.i += word.len();
        out.extend_from_slice(word);
        Some(())
    }

    /// A number: a plain integer of up to 19 digits (it fits a u64) is written as it stands;
    /// any other is parsed and written by serde_json, whose reading (`-0` is a float, a large
    /// integer a double, its float parsing precision) and formatting decide the text.
    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.i += 1;
        }
        let tok = &self.b[start..self.i];
        let plain = tok.len() <= 19
            && tok.iter().all(u8::is_ascii_digit)
            && (tok.len() == 1 || tok[0] != b'0');
        if plain {
            out.extend_from_slice(tok);
        } else {
            let n: serde_json::Number = serde_json::from_str(&self.s[start..self.i]).ok()?;
            let _ = serde_json::to_writer(&mut *out, &n);
        }
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn array(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.enter()?;
        self.i += 1;
        out.push(b'[');
        self.ws();
        if self.eat(b']').is_none() {
            loop {
                self.value(out)?;
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        out.push(b',');
                        self.ws();
                    }
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        out.push(b']');
        self.depth -= 1;
        Some(())
    }

    fn object(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.enter()?;
        let level = self.depth;
        self.i += 1;
        self.ws();
        if self.eat(b'}').is_some() {
            out.extend_from_slice(b"{}");
            self.depth -= 1;
            return Some(());
        }
        if self.bufs.len() < level {
            self.bufs.resize_with(level, Vec::new);
        }
        let mut scratch = std::mem::take(&mut self.bufs[level - 1]);
        scratch.clear();
        let mut members: Vec<Member<'a>> = Vec::new();
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let (c, t) = (scratch.len(), self.i);
            self.value(&mut scratch)?;
            members.push(Member {
                key,
                canon: (c, scratch.len()),
                text: (t, self.i),
            });
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        // Stable: members with the same key stay in input order. Of those the last one is kept,
        // as serde_json's map insert does: `dedup_by` keeps the earlier of two equal neighbours,
        // so the later one's value is swapped into it first.
        members.sort_by(|a, b| a.key.cmp(&b.key));
        members.dedup_by(|later, kept| {
            let same = later.key == kept.key;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        out.push(b'{');
        for (n, m) in members.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            Self::write_string(out, &m.key);
            out.push(b':');
            out.extend_from_slice(&scratch[m.canon.0..m.canon.1]);
        }
        out.push(b'}');
        if level == 1 {
            self.top = members
                .into_iter()
                .map(|m| (m.key, &self.s[m.text.0..m.text.1]))
                .collect();
        }
        self.bufs[level - 1] = scratch;
        self.depth -= 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Today's canonical text: serde_json's `Value`, written compact.
    fn via_value(text: &str) -> Option<Vec<u8>> {
        let v = crate::alert::json::parse_value(text).ok()?;
        v.is_object().then(|| serde_json::to_vec(&v).unwrap())
    }

    fn fast(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        canonicalise(text, &mut out).map(|_| out)
    }

    /// The property: whenever the one-pass path answers, serde_json's path accepts the text and
    /// writes the same bytes.
    fn same(text: &str) {
        if let Some(f) = fast(text) {
            let v = via_value(text).unwrap_or_else(|| panic!("serde_json refuses {text:?}"));
            assert_eq!(
                String::from_utf8_lossy(&f),
                String::from_utf8_lossy(&v),
                "for {text:?}"
            );
        }
    }

    #[test]
    fn numbers_of_every_form_are_written_as_serde_json_writes_them() {
        for n in [
            "0",
            "-0",
            "1",
            "-1",
            "1e5",
            "1.0",
            "1E+2",
            "1e-2",
            "-0.0",
            "0.1",
            "1.7976931348623157e308",
            "5e-324",
            "2.2250738585072014e-308",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567890",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.30000000000000004",
            "3.141592653589793238462643383279",
            "100000000000000000000000000000000000000000000",
            "1.00000000000000011102230246251565404236316680908203125",
        ] {
            let text = format!(r#"{{"n":{n},"a":[{n}, {n}]}}"#);
            assert!(fast(&text).is_some(), "{n} takes the fast path");
            same(&text);
        }
    }

    #[test]
    fn what_serde_json_refuses_or_reads_otherwise_is_left_to_it() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(150), "]".repeat(150));
        for text in [
            r#"{"n":1e400}"#,
            r#"{"n":-1e400}"#,
            r#"{"n":01}"#,
            r#"{"n":1.}"#,
            r#"{"n":-}"#,
            r#"{"n":+1}"#,
            r#"{"n":1.5.3}"#,
            "{\"s\":\"a\u{1}b\"}",
            r#"{"s":"\ud800"}"#,
            r#"{"s":"\x"}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            r#"{"a":truex}"#,
            r#"{"a" 1}"#,
            r#"{"a":"#,
            r#"{"a":"x"#,
            r#"{"a":"x\"#,
            "[1]",
            "\"x\"",
            "",
            &deep,
        ] {
            assert!(fast(text).is_none(), "{text:?} is left to serde_json");
        }
    }

    #[test]
    fn keys_sort_and_the_last_duplicate_wins_and_escapes_are_rewritten() {
        let text = "{ \"b\" : 1 ,\"a\":{\"z\":[true,false,null],\"y\":\"\\u00e9\\/\\u001f\\t\"},\"b\":2,\"\\u0061\":3,\"é\":\"é\"}";
        assert_eq!(
            String::from_utf8(fast(text).unwrap()).unwrap(),
            "{\"a\":3,\"b\":2,\"é\":\"é\"}"
        );
        same(text);
        let mut out = Vec::new();
        let top = canonicalise(text, &mut out).unwrap();
        assert_eq!(top.get("b"), Some("2"));
        assert_eq!(top.get("a"), Some("3"), "`\\u0061` is `a`, read last");
        assert_eq!(top.str("é").as_deref(), Some("é"));
        assert!(!top.contains("z"), "only the top level");
    }

    /// A JSON text built to exercise the canonical form: whitespace anywhere, keys from a small
    /// set (so duplicates happen), strings written raw or escaped in every way, numbers of every
    /// form.
    fn json(depth: u32) -> BoxedStrategy<String> {
        let ws = prop::sample::select(vec!["", "", " ", "\n  ", "\t", "\r\n"]);
        let number = prop_oneof![
            prop::sample::select(vec![
                "-0",
                "0",
                "1e5",
                "1.0",
                "1E+2",
                "-1e-7",
                "18446744073709551616",
                "18446744073709551615",
                "-9223372036854775809",
                "-9223372036854775808",
                "1e400",
                "0.1",
                "01",
            ])
            .prop_map(str::to_owned),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        ];
        let leaf = prop_oneof![
            number,
            string(),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
        ];
        let key = prop_oneof![
            prop::sample::select(vec!["\"a\"", "\"b\"", "\"\\u0061\"", "\"id\"", "\"é\""])
                .prop_map(str::to_owned),
            string(),
        ];
        leaf.prop_recursive(depth, 64, 6, move |inner| {
            let ws = ws.clone();
            prop_oneof![
                prop::collection::vec((inner.clone(), ws.clone()), 0..6).prop_map(|items| {
                    let parts: Vec<String> = items.into_iter().map(|(v, w)| v + w).collect();
                    format!("[{}]", parts.join(","))
                }),
                prop::collection::vec((key.clone(), inner, ws), 0..6).prop_map(|members| {
                    let parts: Vec<String> = members
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}{k}{w}:{w}{v}"))
                        .collect();
                    format!("{{{}}}", parts.join(","))
                }),
            ]
        })
        .boxed()
    }

    /// A string literal: each character raw, or as `\uXXXX` (surrogate pairs beyond the BMP),
    /// or as its short escape; control characters raw now and then (which JSON refuses).
    fn string() -> impl Strategy<Value = String> {
        prop::collection::vec((any::<char>(), 0u8..6), 0..8).prop_map(|chars| {
            let mut s = String::from("\"");
            for (c, how) in chars {
                match (c, how) {
                    ('"', _) => s.push_str("\\\""),
                    ('\\', _) => s.push_str("\\\\"),
                    (c, 0) if (c as u32) < 0x20 => s.push(c),
                    (c, 0 | 1) if (c as u32) >= 0x20 => s.push(c),
                    (c, 2) => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            s.push_str(&format!("\\u{u:04X}"));
                        }
                    }
                    ('\n', _) => s.push_str("\\n"),
                    ('\t', _) => s.push_str("\\t"),
                    ('/', _) => s.push_str("\\/"),
                    (c, _) => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            s.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
            s.push('"');
            s
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_one_pass_form_is_serde_jsons_form(body in json(4), w in "[ \n]{0,2}") {
            // The top level is an object, as an alert is.
            let text = format!("{w}{{\"x\":{body}, \"b\" :{body}}}{w}");
            same(&text);
            // Whatever serde_json accepts without the huge-number detour is read here too.
            if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                prop_assert!(fast(&text).is_some(), "{text:?} took the slow path");
            }
        }

        /// Cut anywhere, or with a byte changed, the text is either refused by both paths or
        /// written alike.
        #[test]
        fn broken_texts_are_never_read_otherwise(body in json(3), cut in any::<prop::sample::Index>(), byte in prop::sample::select(b"{}[]\",:\\ 0-e.tx".to_vec())) {
            let text = format!("{{\"x\":{body}}}");
            let at = cut.index(text.len() + 1);
            if text.is_char_boundary(at) {
                same(&text[..at]);
                if at < text.len() && text.is_char_boundary(at + 1) {
                    let mut changed = text.clone();
                    changed.replace_range(at..at + 1, &(byte as char).to_string());
                    same(&changed);
                }
            }
        }
    }
}
