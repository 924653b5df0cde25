//! Reading an alert's JSON text when it holds what a double cannot (`1e400`): serde_json
//! without arbitrary precision refuses the whole object, and one odd field (a counter, a hash read
//! as a number) must not cost the alert. Used by the API pages and by `import` alike.

/// Parses an element; a number beyond a double's range (`1e400`) does not make the alert
/// unreadable: it is read as its text (the stored alert keeps it verbatim anyway).
pub(crate) fn parse_value(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str(text).or_else(|e| match quote_huge_numbers(text) {
        Some(t) => serde_json::from_str(&t).map_err(|_| e),
        None => Err(e),
    })
}

/// `text` with every number that is too large for a double made a string; `None` when there is
/// none.
pub(crate) fn quote_huge_numbers(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let number = &text[start..i];
                if number.parse::<f64>().is_ok_and(f64::is_infinite) {
                    out.push_str(&text[copied..start]);
                    out.push('"');
                    out.push_str(number);
                    out.push('"');
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    (copied > 0).then(|| {
        out.push_str(&text[copied..]);
        out
    })
}
