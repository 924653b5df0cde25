//! Keeps secrets out of text a server sent back.
//!
//! A token endpoint, an API or a proxy may echo the request it got (`client_secret=…`,
//! `Authorization: Bearer …`) in its error text. That text ends up in messages, logs, `runs.error`
//! and `status`, so it is cleaned in one place: [`ServerText`] is the only way server-supplied
//! text gets into an error of this crate, and it can only be built by redacting.
//!
//! Two nets: every secret this process knows (client secrets, passwords, the proxy password, the
//! tokens it was issued, in their plain, form-encoded, percent-encoded and JSON-escaped forms) is
//! replaced wherever it appears; and generic shapes (`Bearer …`, `Authorization: …`,
//! `client_secret=…`, `password=…`, JWT-looking strings, `user:pass@` in URLs) are replaced even
//! when the secret is not known here (an old token, another app's secret).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret.
const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not searched for: they would blank out ordinary words, and Entra
/// accepts no secret or password that short.
const MIN_SECRET_LEN: usize = 3;

/// How many issued tokens are remembered. A service renews its token every hour or so; the oldest
/// (long expired, and JWTs anyway, which the generic pattern catches) are forgotten first.
const MAX_TOKENS: usize = 64;

/// The longest snippet of a server's answer shown in a message, in characters.
const SNIPPET_CHARS: usize = 200;

#[derive(Default)]
struct Known {
    /// Configured secrets (client secrets, passwords, the proxy password), in every form: never
    /// forgotten.
    secrets: Vec<SecretString>,
    /// A digest of each entry of `secrets`, so that registering a form is one lookup rather than
    /// a scan: a provider's 10,000 tenants with their own secrets are 70,000 forms, and the scan
    /// made loading them quadratic. A digest rather than the text: no second plain copy.
    seen: HashSet<[u8; 32]>,
    /// One automaton over `secrets`, built on first use after a change (`None`: not built yet).
    /// Every alert is scrubbed, so a text is searched once for all forms, not once per form.
    matcher: Option<Matcher>,
    /// Issued tokens and assertions, newest last (at most [`MAX_TOKENS`] forms).
    tokens: std::collections::VecDeque<SecretString>,
}

/// How the configured secrets are searched for.
enum Matcher {
    /// Leftmost-longest, so that a secret containing another is replaced whole.
    Automaton(AhoCorasick),
    /// The automaton could not be built (a size limit of the crate): one search per form, slower
    /// but never leaking.
    Each,
}

impl Known {
    fn matcher(&mut self) -> &Matcher {
        let secrets = &self.secrets;
        self.matcher.get_or_insert_with(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(secrets.iter().map(|s| s.expose_secret()))
                .map_or(Matcher::Each, Matcher::Automaton)
        })
    }
}

static KNOWN: LazyLock<Mutex<Known>> = LazyLock::new(Mutex::default);

/// The forms a secret takes when a server echoes it: as sent in a form body (`+` for space,
/// `%XX`), percent-encoded with `%20`, lower-case hex, and escaped inside a JSON string.
fn variants(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let pct = form.replace('+', "%20");
    let lower_hex = lower_percent_hex(&pct);
    let lower_form = lower_percent_hex(&form);
    let json = serde_json::to_string(secret)
        .map(|s| s[1..s.len() - 1].to_owned())
        .unwrap_or_default();
    let json_slash = json.replace('/', "\\/");
    let mut v = vec![
        secret.to_owned(),
        form,
        pct,
        lower_hex,
        lower_form,
        json,
        json_slash,
    ];
    v.retain(|s| s.len() >= MIN_SECRET_LEN);
    v.sort();
    v.dedup();
    v
}

fn lower_percent_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0;
    for c in s.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn known() -> std::sync::MutexGuard<'static, Known> {
    KNOWN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remembers a configured secret (client secret, password, proxy password): from now on it is
/// removed from every server-supplied text, in every form a server may echo it.
pub(crate) fn register_secret(secret: &str) {
    let mut k = known();
    for v in variants(secret) {
        if k.seen.insert(*blake3::hash(v.as_bytes()).as_bytes()) {
            k.secrets.push(SecretString::from(v));
            k.matcher = None;
        }
    }
}

/// Remembers a user name and password the product sends, in every form they travel in: the
/// password alone; `user:password` as it stands in a URL's user info (plain and percent-encoded,
/// as it was configured); and the base64 encodings protocols carry it in: HTTP `Basic`
/// (`Authorization`, `Proxy-Authorization`: `user:password`) and SMTP `AUTH PLAIN`
/// (`\0user\0password`) and `AUTH LOGIN` (the password alone). A server or a TLS-inspecting
/// proxy that echoes request headers echoes the encoded forms, which contain neither part as
/// text; each is then removed like any configured secret. The user name alone is not secret
/// and is left alone (it would blank out ordinary words).
pub(crate) fn register_credential(user: &str, password: &str) {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let userinfo = |u: &str, p: &str| format!("{u}:{p}");
    let form = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let mut forms = vec![password.to_owned()];
    // Without a password, `user:` is no secret as text (only its encoded forms are sent).
    if !password.is_empty() {
        forms.push(userinfo(user, password));
        // Each part encoded on its own (the `:` between them stays), as a URL carries them.
        forms.push(userinfo(&form(user), &form(password)));
        forms.push(userinfo(
            &lower_percent_hex(&form(user)),
            &lower_percent_hex(&form(password)),
        ));
    }
    // The `url` crate's own encoding: what the configured proxy URL is written back as.
    if !password.is_empty()
        && let Ok(mut u) = url::Url::parse("http://host.invalid/")
        && u.set_username(user).is_ok()
        && u.set_password(Some(password)).is_ok()
    {
        let written = userinfo(u.username(), u.password().unwrap_or_default());
        forms.push(lower_percent_hex(&written));
        forms.push(written);
    }
    for raw in [
        userinfo(user, password),
        format!("\0{user}\0{password}"),
        password.to_owned(),
    ] {
        if raw.is_empty() {
            continue;
        }
        // Unpadded too: an echo may drop the `=`, and the padded form contains it anyway.
        forms.push(STANDARD.encode(raw.as_bytes()));
        forms.push(STANDARD_NO_PAD.encode(raw.as_bytes()));
    }
    for f in forms {
        if !f.is_empty() {
            register_secret(&f);
        }
    }
}

/// Remembers an issued token or signed assertion (the newest [`MAX_TOKENS`] are kept).
pub(crate) fn register_token(token: &str) {
    let mut k = known();
    for v in variants(token) {
        if k.tokens.iter().any(|s| s.expose_secret() == v) {
            continue;
        }
        if k.tokens.len() >= MAX_TOKENS {
            k.tokens.pop_front();
        }
        k.tokens.push_back(SecretString::from(v));
    }
}

/// `text` with every known secret and token (in every form) replaced by the redaction marker, and
/// nothing else changed; borrowed when there is none (the usual case: one pass of the automaton
/// and a search per remembered token form).
pub(crate) fn scrub_known(text: &str) -> Cow<'_, str> {
    scrub_known_and(text, None)
}

/// A value to scrub besides the known ones (the token a page was fetched with), in every form a
/// server may echo it. Made once per page: its forms are seven strings, and a page has up to
/// thousands of alerts.
pub(crate) struct Also(Vec<SecretString>);

impl Also {
    /// `value` in every form.
    pub(crate) fn new(value: &str) -> Also {
        Also(
            variants(value)
                .into_iter()
                .map(SecretString::from)
                .collect(),
        )
    }
}

/// [`scrub_known`], and also `also`. A service of many tenants remembers only the newest tokens;
/// the one a server would echo is the one it was sent, so the caller that sent it passes it here.
pub(crate) fn scrub_known_and<'a>(text: &'a str, also: Option<&Also>) -> Cow<'a, str> {
    let extra = also.map_or(&[][..], |a| &a.0[..]);
    let mut k = known();
    // Tokens first, longest first: a token is longer than any secret inside it.
    let mut found: Vec<&str> = k
        .tokens
        .iter()
        .map(|s| s.expose_secret())
        .chain(extra.iter().map(|s| s.expose_secret()))
        .filter(|s| text.contains(*s))
        .collect();
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = Cow::Borrowed(text);
    for s in found {
        out = Cow::Owned(out.replace(s, REDACTED));
    }
    match k.matcher() {
        Matcher::Automaton(ac) => {
            if ac.is_match(out.as_ref()) {
                let mut dst = String::with_capacity(out.len());
                ac.replace_all_with(&out, &mut dst, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                out = Cow::Owned(dst);
            }
        }
        Matcher::Each => {
            let mut all: Vec<&str> = k
                .secrets
                .iter()
                .map(|s| s.expose_secret())
                .filter(|s| out.contains(*s))
                .collect();
            all.sort_by_key(|s| std::cmp::Reverse(s.len()));
            for s in all {
                out = Cow::Owned(out.replace(s, REDACTED));
            }
        }
    }
    out
}

/// Generic shapes of secrets, with the part to keep in group 1.
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // `Authorization: Bearer x`, `Proxy-Authorization: Basic x`, `"authorization":"x"`.
        r#"(?i)((?:proxy-)?authorization\\?["']?\s*[:=]\s*\\?["']?)[^\r\n"'\\&,}]+"#,
        // `Bearer x` anywhere.
        r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/%]+=*",
        // `client_secret=x`, `"password": "x"`, `client_assertion=x`, `access_token=x`, … (form,
        // JSON, query string).
        r#"(?i)(\b(?:client_secret|client_assertion|password|passwd|pwd|access_token|refresh_token|id_token|assertion)\\?["']?\s*[:=]\s*\\?["']?)[^&"'\s,;}\\]+"#,
        // `scheme://user:password@host`.
        r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^/\s@]+@",
        // A JWT (three base64url parts, the first a JSON object).
        r"()\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("the redaction patterns are valid"))
    .collect()
});

/// `text` with every known secret and every secret-shaped part replaced by [`REDACTED`].
fn redact(text: &str) -> String {
    // Known values first (longest first, in `scrub_known`), then the generic shapes.
    let mut out = scrub_known(text).into_owned();
    for re in PATTERNS.iter() {
        if re.is_match(&out) {
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    let keep = c.get(1).map_or("", |m| m.as_str());
                    if c[0].ends_with('@') {
                        format!("{keep}{REDACTED}@")
                    } else {
                        format!("{keep}{REDACTED}")
                    }
                })
                .into_owned();
        }
    }
    out
}

/// Text a server sent (an error message, a body, a `Location`), made safe to show and store:
/// secrets redacted, control characters and line breaks folded into single spaces, and cut to
/// [`SNIPPET_CHARS`]. The only constructor redacts, so an error field of this type cannot carry
/// an echoed secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerText(String);

impl ServerText {
    /// Cleans `raw` (see the type's doc).
    pub(crate) fn new(raw: &str) -> ServerText {
        ServerText::with_limit(raw, SNIPPET_CHARS)
    }

    /// Cleans `raw`, keeping up to `max_chars` characters.
    pub(crate) fn with_limit(raw: &str, max_chars: usize) -> ServerText {
        // Redact the whole text first: a secret cut by the limit would otherwise show in part.
        let clean = redact(raw);
        let mut out = String::new();
        let mut count = 0;
        let mut space = false;
        let mut cut = false;
        for c in clean.trim().chars() {
            if c.is_control() || c.is_whitespace() {
                space = true;
                continue;
            }
            if count >= max_chars {
                cut = true;
                break;
            }
            if space && !out.is_empty() {
                out.push(' ');
                count += 1;
            }
            space = false;
            out.push(c);
            count += 1;
        }
        if cut {
            out.push('…');
        }
        ServerText(out)
    }

    /// The cleaned text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether nothing is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ServerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider's thousands of tenants each have their own secret. Searched one form at a time,
    /// that is 70,000 searches per alert at 10,000 tenants (and a quadratic load); one automaton:
    /// every secret of a large set is still found, in its forms, and a secret registered after the
    /// automaton was built is found too.
    #[test]
    fn thousands_of_secrets_are_each_scrubbed() {
        for i in 0..2_000 {
            register_secret(&format!("bulk-{i:04}-Qz8~secret/value"));
        }
        for i in [0, 777, 1_999] {
            let s = format!("bulk-{i:04}-Qz8~secret/value");
            let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            let text = format!(
                "title {s} and a form cs={form}&x=1 and json \"{}\"",
                s.replace('/', "\\/")
            );
            let out = scrub_known(&text);
            assert!(!out.contains(&format!("bulk-{i:04}")), "{out}");
            assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
        }
        assert!(matches!(
            scrub_known("nothing secret here"),
            Cow::Borrowed(_)
        ));
        register_secret("bulk-late-Qz8~registered-after-a-scrub");
        let out = scrub_known("late: bulk-late-Qz8~registered-after-a-scrub.");
        assert_eq!(out, format!("late: {REDACTED}."));
    }

    /// A secret that contains another is replaced whole, not left with its tail showing.
    #[test]
    fn a_secret_containing_another_goes_whole() {
        register_secret("nest-Qz8~inner");
        register_secret("nest-Qz8~inner-and-outer-part");
        let out = scrub_known("x nest-Qz8~inner-and-outer-part y nest-Qz8~inner z");
        assert_eq!(out, format!("x {REDACTED} y {REDACTED} z"));
    }

    /// A service of many tenants remembers only its newest tokens; the token a page was fetched
    /// with is scrubbed from it even after newer tokens pushed it out.
    #[test]
    fn the_token_a_page_was_fetched_with_is_scrubbed_however_old() {
        let old = "tok-Qz8.fetched-with-this-one.0123456789";
        register_token(old);
        for i in 0..MAX_TOKENS {
            register_token(&format!("tok-Qz8.newer-{i}.0123456789"));
        }
        let text = format!("echo {old}");
        assert!(
            scrub_known(&text).contains(old),
            "pushed out of the remembered tokens"
        );
        assert_eq!(
            scrub_known_and(&text, Some(&Also::new(old))),
            format!("echo {REDACTED}")
        );
    }

    #[test]
    fn known_secrets_go_in_every_encoding() {
        let secret = "Zk8~q.R_w+a/b=c d";
        register_secret(secret);
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for echoed in [
            format!("bad secret {secret} given"),
            format!("body was grant_type=x&cs={form}&y=1"),
            format!("body was cs={}", form.replace('+', "%20")),
            format!("body was cs={}", lower_percent_hex(&form)),
            format!(r#"{{"echo":{}}}"#, serde_json::to_string(secret).unwrap()),
        ] {
            let r = redact(&echoed);
            assert!(!r.contains(secret), "{r}");
            assert!(!r.contains(&form), "{r}");
            assert!(r.contains(REDACTED), "{r}");
        }
    }

    /// A proxy's credential travels as the `Basic` value of `Proxy-Authorization` (base64 of
    /// `user:password`), which contains neither part as text: only the password was known, so a
    /// proxy reflecting the header got the credential into alert text. Every form is known now,
    /// the SMTP encodings included.
    #[test]
    fn a_credential_goes_in_every_form_it_travels_in() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let (user, password) = ("svc-cred-Qz8", "p@ss/w0rd:Qz8~");
        register_credential(user, password);
        let basic = STANDARD.encode(format!("{user}:{password}"));
        let plain = STANDARD.encode(format!("\0{user}\0{password}"));
        for echoed in [
            format!("Proxy-Authorization: Basic {basic}"),
            format!("x-echo: {}", basic.trim_end_matches('=')),
            format!("{{\"h\":\"{}\"}}", basic.replace('/', "\\/")),
            format!("via http://{user}:p%40ss%2Fw0rd%3AQz8~@proxy:3128/"),
            format!("via http://{user}:p%40ss%2fw0rd%3aQz8~@proxy:3128/"),
            format!("creds {user}:{password}"),
            format!("AUTH PLAIN {plain}"),
            format!("AUTH LOGIN {}", STANDARD.encode(password)),
        ] {
            let out = scrub_known(&echoed);
            assert!(out.contains(REDACTED), "{echoed} -> {out}");
            for form in [
                basic.as_str(),
                basic.trim_end_matches('='),
                password,
                "p%40ss",
            ] {
                assert!(!out.contains(form), "{echoed} -> {out}");
            }
        }
        // The user name alone is not a secret.
        assert_eq!(
            scrub_known(&format!("user {user} signed in")),
            format!("user {user} signed in")
        );
    }

    #[test]
    fn generic_shapes_go_even_when_unknown() {
        for (echoed, gone) in [
            ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
            ("header authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            ("client_secret=unknown-s3cret&scope=x", "unknown-s3cret"),
            (r#"{"password": "hunter22"}"#, "hunter22"),
            (r#"{\"client_secret\":\"escaped-one\"}"#, "escaped-one"),
            ("client_assertion=eyJhbGciOi.eyJzdWIiOi.c2ln", "eyJzdWIiOi"),
            ("token eyJhbGciOiJ.eyJhdWQiOiJ.sig_part here", "eyJhdWQiOiJ"),
            ("via http://user:pr0xy-pw@proxy:3128/", "pr0xy-pw"),
        ] {
            let r = redact(echoed);
            assert!(!r.contains(gone), "{echoed} -> {r}");
            assert!(r.contains(REDACTED), "{echoed} -> {r}");
        }
        // Ordinary text is left alone.
        let plain =
            "AADSTS50126: Error validating credentials due to invalid username or password.";
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn server_text_is_one_short_clean_line() {
        let t = ServerText::new("<html>\r\n  <title>Sign in</title>\u{1b}[31m\n</html>");
        assert_eq!(t.as_str(), "<html> <title>Sign in</title> [31m </html>");
        let long = "x".repeat(1000);
        let t = ServerText::new(&long);
        assert_eq!(t.as_str().chars().count(), SNIPPET_CHARS + 1);
        assert!(t.as_str().ends_with('…'));
        // A secret straddling the cut is redacted, not shown in part.
        register_token("tok-straddling-the-cut-0123456789");
        let t = ServerText::new(&format!(
            "{}tok-straddling-the-cut-0123456789",
            "y".repeat(SNIPPET_CHARS - 5)
        ));
        assert!(!t.as_str().contains("tok-s"), "{t}");
    }
}
