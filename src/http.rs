//! The one HTTP client, and the one place that decides what is worth retrying.
//!
//! reqwest sets no timeouts by default; an API that stops answering would hang a poll forever, so
//! both the connect and the whole-request timeout are always set. TLS is rustls with the platform's
//! roots (no OpenSSL); plain `http://` is refused by the config except to loopback.
//!
//! Every server is untrusted input. Entra and Defender never redirect, so redirects are never
//! followed (a followed 307 would re-post the client secret to whatever host `Location` names, and
//! a followed 302 would store a foreign host's answer as alerts): a 3xx is an error that says
//! where it pointed. Bodies are read in chunks up to a cap (`MAX_PAGE_BYTES`,
//! `MAX_TOKEN_BYTES`, `MAX_ERROR_BYTES`), never whole, into blocks of one size (never a
//! buffer regrown by doubling); pages are paid for from the process's one `BodyBudget`, so the
//! memory of all the answers being read at once is bounded, not only each one's. Every duration a server sets is
//! clamped (`MAX_RETRY_AFTER`), so no arithmetic on it can overflow.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::HttpConfig;

/// The User-Agent Microsoft asks integrators to send (`MdatpPartner-{Company}-{Product}/{Version}`).
const USER_AGENT: &str = concat!(
    "MdatpPartner-mdealerts-mde-alerts/",
    env!("CARGO_PKG_VERSION")
);

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `[http] proxy` is not a proxy URL reqwest can use.
    #[error("the proxy {url} cannot be used")]
    Proxy {
        /// The proxy's URL (credentials are never part of it: they are their own keys).
        url: url::Url,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// `[http] ca_file` cannot be read.
    #[error("cannot read {}", path.display())]
    CaRead {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `[http] ca_file` is not a PEM bundle.
    #[error("{} is not a PEM bundle", path.display())]
    CaPem {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The TLS backend would not build the client; with a `ca_file`, its certificates are the
    /// usual cause (a PEM block whose content is not a certificate is found only here).
    #[error("the TLS client could not be built{}", ca_file.as_ref().map(|p| format!(" with the certificates of {}", p.display())).unwrap_or_default())]
    Build {
        /// `[http] ca_file`, when set.
        ca_file: Option<std::path::PathBuf>,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// What to do about it: printed once, as `fix: …`, after the error.
    pub(crate) fn hint(&self) -> String {
        match self {
            ClientError::Proxy { .. } => {
                "set [http] proxy to the proxy's URL, such as http://proxy.example:3128".into()
            }
            ClientError::CaRead { .. } => {
                "point [http] ca_file at a file this user can read, or remove the key".into()
            }
            ClientError::CaPem { .. } => "give [http] ca_file the CA certificate(s) in PEM (text starting with -----BEGIN CERTIFICATE-----); convert a DER file with `openssl x509 -inform der -in ca.cer -out ca.pem`".into(),
            ClientError::Build {
                ca_file: Some(path),
                ..
            } => format!(
                "give [http] ca_file the CA certificate(s) in PEM; `openssl x509 -in {} -noout -subject` shows whether it holds one",
                path.display()
            ),
            ClientError::Build { ca_file: None, .. } => {
                "check [http] proxy in the config; the cause above names what failed".into()
            }
        }
    }
}

/// Builds the shared client: timeouts always; the configured proxy (its credentials sent as
/// `Proxy-Authorization`, never logged) or else the standard `HTTPS_PROXY` / `HTTP_PROXY` /
/// `NO_PROXY` variables; and the extra CA from `ca_file`, merged with the system's roots.
/// Certificate verification cannot be turned off: there is deliberately no setting for it.
pub fn client(request_timeout: Duration, net: &HttpConfig) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(15))
        .timeout(request_timeout)
        // Entra and Defender do not redirect; a redirect is answered by [`redirect_target`].
        .redirect(reqwest::redirect::Policy::none());
    if let Some(p) = &net.proxy {
        let mut proxy = reqwest::Proxy::all(p.url.as_str())
            .map_err(|source| ClientError::Proxy {
                url: p.url.clone(),
                source,
            })?
            .no_proxy(reqwest::NoProxy::from_env());
        if let Some(user) = &p.username {
            let pass = p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("");
            // A proxy or server that echoes `Proxy-Authorization` must not get it shown, in
            // any form (the header carries it base64-encoded).
            crate::redact::register_credential(user, pass);
            proxy = proxy.basic_auth(user, pass);
        }
        b = b.proxy(proxy);
    } else {
        register_env_proxy_credentials(|k| std::env::var(k).ok());
    }
    if let Some(ca) = &net.ca_file {
        let pem = std::fs::read(ca).map_err(|source| ClientError::CaRead {
            path: ca.clone(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| ClientError::CaPem {
                path: ca.clone(),
                source,
            })?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|source| ClientError::Build {
        ca_file: net.ca_file.clone(),
        source,
    })
}

/// The variables reqwest takes a proxy from when none is configured, in its order of preference.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Registers the credentials of a proxy given in the environment (`HTTPS_PROXY=http://user:pass@…`):
/// reqwest sends them as `Proxy-Authorization` just as it does a configured proxy's, so they are
/// secrets in the same forms.
fn register_env_proxy_credentials(var: impl Fn(&str) -> Option<String>) {
    for name in PROXY_VARIABLES {
        let Some(value) = var(name) else { continue };
        // reqwest reads a proxy without a scheme as `http://`.
        let parsed =
            url::Url::parse(&value).or_else(|_| url::Url::parse(&format!("http://{value}")));
        let Ok(u) = parsed else { continue };
        if u.username().is_empty() && u.password().is_none() {
            continue;
        }
        let decode = |s: &str| percent_decode(s);
        crate::redact::register_credential(
            &decode(u.username()),
            &decode(u.password().unwrap_or_default()),
        );
    }
}

/// `%XX` sequences decoded (what a URL's user info means), invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the caller should do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Try again after a backoff (or after the server's `Retry-After`).
    Later,
    /// Renew the token once, then try again.
    RenewToken,
    /// Try again once, then give up: an HTML page where JSON belongs is a gateway's passing
    /// hiccup or a proxy's login page, and only the first goes away when asked again.
    Once,
    /// Do not retry: the request itself is wrong or not allowed.
    Never,
}

/// Classifies an HTTP status. Kept tiny and table-tested: every retry decision in the crate comes
/// from here or [`classify_transport`].
pub(crate) fn classify_status(status: u16) -> Retry {
    match status {
        401 => Retry::RenewToken,
        408 | 429 | 500..=599 => Retry::Later,
        _ => Retry::Never,
    }
}

/// Classifies a transport-level failure (no usable response).
pub(crate) fn classify_transport(e: &reqwest::Error) -> Retry {
    if e.is_builder() || e.is_redirect() {
        Retry::Never
    } else {
        // connect errors, timeouts, resets, bodies cut short
        Retry::Later
    }
}

/// The longest `Retry-After` believed: a day. A longer one (or `18446744073709551615`) is a broken
/// or hostile server; a day already passes any poll's deadline, which ends the poll as partial.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses `Retry-After` given in seconds (what Defender sends) or as an HTTP date, clamped to
/// [`MAX_RETRY_AFTER`] (a number of seconds too large for any integer type included).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The server's clock from its `Date` header (an HTTP date, one-second precision), if it sent a
/// readable one.
pub(crate) fn server_date(
    headers: &reqwest::header::HeaderMap,
) -> Option<crate::alert::time::ApiTime> {
    let v = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    Some(crate::alert::time::ApiTime::from_chrono(
        when.with_timezone(&chrono::Utc),
    ))
}

/// `now + d`, or `None` when that instant cannot be represented (a server-chosen `d`): callers
/// treat `None` as "later than any deadline", never as a panic.
pub(crate) fn later(now: tokio::time::Instant, d: Duration) -> Option<tokio::time::Instant> {
    now.checked_add(d)
}

/// The most a page of alerts may weigh: 128 MiB. The largest page a poll asks for is 10,000
/// alerts with `$expand=evidence` from the MDE API; built from the simulator's generator
/// (`cargo run --release --example largest_page`), the 10,000 largest of 50,000 alerts with
/// evidence weigh 32 MiB together (a page in the order served, 25 MiB; Graph's page of 1,000,
/// 4.4 MiB at most). The cap leaves four times that for alerts carrying more evidence than the
/// generator gives them; anything larger is a broken or hostile server.
pub(crate) const MAX_PAGE_BYTES: usize = 128 << 20;
/// What all the pages being read at once may hold together: 512 MiB, the process's one budget
/// for answers in flight. Sixteen polls (the default concurrency) each reading a full page of
/// 10,000 alerts with evidence fit in it; sixteen answers that never end stop there, so a broken
/// proxy in front of every tenant cannot take the machine's memory.
pub const BODY_BUDGET_BYTES: usize = 512 << 20;
/// The most a token response may weigh: 256 KiB (a token with many group claims is ~10 KB).
pub(crate) const MAX_TOKEN_BYTES: usize = 256 << 10;
/// The most of an error answer that is read (only a snippet of it is ever shown): 64 KiB.
const MAX_ERROR_BYTES: usize = 64 << 10;
/// A call's first share of the [`BodyBudget`], taken before it asks: a quiet page and any
/// error answer fit in it, so an ordinary call never needs more.
pub(crate) const FIRST_SHARE: usize = MAX_ERROR_BYTES;
/// The blocks a body is read into after its first. A buffer regrown as the body arrives is
/// copied at every step, and the allocator keeps the copies it left behind: an endless answer
/// read into a buffer growing 8 MiB at a time peaked at 342 MiB for 128 MiB read, and one
/// doubling up to a 512 MiB cap at 1 GiB. Blocks of one size are only ever added (the process
/// peaked at 175 MiB for the same 128 MiB), and what one body frees serves the next.
const BLOCK: usize = 512 << 10;

/// `bytes` for people: `512 MiB`, `256 KiB`, `100 bytes`.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is (or says it is) larger than the cap.
    #[error("the answer is larger than the {} limit{}; reading stopped there", size(*limit as u64), announced.map(|n| format!(" (it announced {n} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The cap.
        limit: usize,
        /// The `Content-Length`, when that alone was too large.
        announced: Option<u64>,
    },
    /// Reading on would pass the budget all answers in flight share.
    #[error("the answers being read at once reached the {} they may hold together (this one had {}); reading stopped there", size(*budget as u64), size(*held as u64))]
    OverBudget {
        /// The process's budget ([`BODY_BUDGET_BYTES`]).
        budget: usize,
        /// What this answer held when it needed more.
        held: usize,
    },
    /// The budget had no room for the call before its deadline.
    #[error("the answers being read at once held all of the {} they may hold together until the poll's deadline; the call was not made", size(*budget as u64))]
    NoBudget {
        /// The process's budget ([`BODY_BUDGET_BYTES`]).
        budget: usize,
    },
    /// The connection failed while reading.
    #[error("the answer was cut short: {0}")]
    Cut(String),
}

/// The process's one budget for the bodies of pages being read, in bytes: every poll takes each
/// block of its body from here before it reads into it, and gives them back when the page is
/// dropped, so the polls running at once hold at most [`BODY_BUDGET_BYTES`] of answers together
/// (and one page being joined) however many there are and however long the answers.
///
/// A call waits only for its first share ([`BodyBudget::reserve`], before it asks), never for
/// more while it holds some: bodies that never end, each holding part of the budget and waiting
/// for the rest, would wait for one another, and every other tenant's poll behind them. A body
/// that finds no room fails at once and gives its share back; waiting calls get it first.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget {
    room: std::sync::Arc<tokio::sync::Semaphore>,
    total: usize,
}

/// A share of a [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    permit: tokio::sync::OwnedSemaphorePermit,
    budget: BodyBudget,
}

impl BodyBudget {
    /// A budget of `bytes` (at most 4 GiB: bytes are permits).
    fn new(bytes: usize) -> BodyBudget {
        let total = bytes.min(u32::MAX as usize);
        BodyBudget {
            room: std::sync::Arc::new(tokio::sync::Semaphore::new(total)),
            total,
        }
    }

    /// The process's budget, [`BODY_BUDGET_BYTES`], shared by every source it builds.
    pub(crate) fn process() -> BodyBudget {
        static PROCESS: std::sync::LazyLock<BodyBudget> =
            std::sync::LazyLock::new(|| BodyBudget::new(BODY_BUDGET_BYTES));
        PROCESS.clone()
    }

    /// Its size in bytes.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.total
    }

    /// What is not held now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.room.available_permits()
    }

    /// Takes `bytes`, waiting while the budget is full, until `deadline` at the latest (without
    /// one the wait still ends: the answers holding the budget never wait for more, and each is
    /// read within the request timeout).
    pub(crate) async fn reserve(
        &self,
        bytes: usize,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Share, BodyError> {
        let no_room = || BodyError::NoBudget { budget: self.total };
        let n = u32::try_from(bytes.min(self.total)).map_err(|_| no_room())?;
        let wait = self.room.clone().acquire_many_owned(n);
        let permit = match deadline {
            Some(d) => tokio::time::timeout_at(d, wait)
                .await
                .map_err(|_| no_room())?,
            None => wait.await,
        };
        Ok(Share {
            permit: permit.map_err(|_| no_room())?,
            budget: self.clone(),
        })
    }
}

impl Share {
    /// Bytes held.
    fn bytes(&self) -> usize {
        self.permit.num_permits()
    }

    /// Holds at least `bytes`, taking the difference at once or failing: never waits (see
    /// [`BodyBudget`]).
    fn cover(&mut self, bytes: usize) -> Result<(), BodyError> {
        let held = self.bytes();
        if bytes <= held {
            return Ok(());
        }
        let over = || BodyError::OverBudget {
            budget: self.budget.total,
            held,
        };
        let more = u32::try_from(bytes - held).map_err(|_| over())?;
        let permit = self
            .budget
            .room
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| over())?;
        self.permit.merge(permit);
        Ok(())
    }
}

/// Reads a body in chunks, failing as soon as it passes `limit` (first by its `Content-Length`,
/// then by what actually arrives), so that an endless or huge answer costs at most `limit` bytes.
pub(crate) async fn read_body(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    read(resp, limit, None).await
}

/// [`read_body`] into memory paid for from `share` of the process's [`BodyBudget`]: the share
/// grows with the body, and reading fails, naming the budget, when the budget has no room for
/// the next block.
pub(crate) async fn read_budgeted(
    resp: reqwest::Response,
    limit: usize,
    share: &mut Share,
) -> Result<Vec<u8>, BodyError> {
    read(resp, limit, Some(share)).await
}

async fn read(
    mut resp: reqwest::Response,
    limit: usize,
    mut share: Option<&mut Share>,
) -> Result<Vec<u8>, BodyError> {
    let too_large = |announced| BodyError::TooLarge { limit, announced };
    // Announced and within the cap: one block of the right size, never joined (the connection
    // fails if more arrives than announced).
    let announced = match resp.content_length() {
        Some(n) if n > limit as u64 => return Err(too_large(Some(n))),
        Some(n) => usize::try_from(n).ok(),
        None => None,
    };
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let (mut len, mut held) = (0usize, 0usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Cut(error_chain(&e.without_url())))?
    {
        len = len.saturating_add(chunk.len());
        if len > limit {
            return Err(too_large(None));
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let room = blocks.last().map_or(0, |b| b.capacity() - b.len());
            if room == 0 {
                let size = match announced {
                    Some(n) if blocks.is_empty() && n > 0 => n,
                    _ if blocks.is_empty() => FIRST_SHARE,
                    _ => BLOCK,
                };
                // `held` never passes the cap, so neither does what is allocated.
                let size = size.min(limit - held);
                if size == 0 {
                    return Err(too_large(None));
                }
                if let Some(share) = share.as_deref_mut() {
                    share.cover(held + size)?;
                }
                blocks.push(Vec::with_capacity(size));
                held += size;
                continue;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            if let Some(block) = blocks.last_mut() {
                block.extend_from_slice(now);
            }
            rest = later;
        }
    }
    Ok(join(blocks, len).await)
}

/// One page at a time is joined: joining holds its blocks and the page together for a moment,
/// so the answers being read hold at most the budget and one page more.
static JOINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The blocks as one buffer (a body of one block is that block).
async fn join(mut blocks: Vec<Vec<u8>>, len: usize) -> Vec<u8> {
    if blocks.len() <= 1 {
        return blocks.pop().unwrap_or_default();
    }
    let _turn = JOINING.lock().await;
    let mut body = Vec::with_capacity(len);
    for block in blocks.drain(..) {
        body.extend_from_slice(&block);
    }
    body
}

/// Reads at most [`MAX_ERROR_BYTES`] of an error answer: only its start is ever shown, so the rest
/// is dropped unread (and a failure to read is no more news than the error status itself).
pub(crate) async fn read_error_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BYTES {
            break;
        }
    }
    body
}

/// Where a redirect answer pointed (its `Location`, cleaned for display), or `None` when the
/// answer is not a redirect. Redirects are never followed; the caller turns this into an error.
pub(crate) fn redirect_target(resp: &reqwest::Response) -> Option<crate::redact::ServerText> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "(no Location header)".to_owned());
    Some(crate::redact::ServerText::new(&location))
}

/// A body that is not what was expected, described for a person: its content type, a short clean
/// (redacted, control-character-free) snippet, and, for an HTML page, the likely cause: a proxy or
/// captive portal answered instead of the real server.
pub(crate) fn describe_body(content_type: Option<&str>, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let snippet = crate::redact::ServerText::new(&text);
    let ct = content_type.unwrap_or("no content type");
    let mut s = if snippet.is_empty() {
        format!("{ct}, empty")
    } else {
        format!("{ct}, starting \"{snippet}\"")
    };
    if is_html(content_type, body) {
        s.push_str(
            "; an HTML page usually means a proxy or captive portal answered instead (a login or \
             block page): check [http] proxy or HTTPS_PROXY, and that the URL is the service's",
        );
    }
    s
}

/// Whether an answer is an HTML page (by its content type, or by how it starts).
pub(crate) fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html"))
        || body.trim_ascii_start().starts_with(b"<")
}

/// The `Content-Type` of an answer, if readable.
pub(crate) fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| crate::redact::ServerText::with_limit(s, 80).to_string())
}

/// Appends `path` to a base URL that may itself carry a path (private endpoints, simulators).
pub(crate) fn join_path(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    u.set_path(&joined);
    u
}

/// The error and its causes on one line (reqwest hides the useful part in `source()`). A cause
/// whose text is already there is left out: many errors repeat their source in their own message
/// (`… (os error 2): No such file or directory (os error 2)`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy given in the environment sends its credential the same way a configured one
    /// does: it is registered in every form, decoded from the URL first.
    #[test]
    fn an_environment_proxys_credential_is_registered() {
        use base64::Engine;
        register_env_proxy_credentials(|k| {
            (k == "https_proxy").then(|| "http://env-user:env%2Fpa55-Qz8@proxy:3128".to_owned())
        });
        let basic = base64::engine::general_purpose::STANDARD.encode("env-user:env/pa55-Qz8");
        let echoed = format!("echo Basic {basic} and env/pa55-Qz8");
        let out = crate::redact::scrub_known(&echoed);
        assert!(
            !out.contains(&basic) && !out.contains("env/pa55-Qz8"),
            "{out}"
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    /// A body that holds part of the budget takes more at once or fails naming the budget,
    /// never waits (bodies that never end would wait for one another); what it held comes back
    /// when it is dropped.
    #[tokio::test]
    async fn a_share_grows_at_once_or_fails_naming_the_budget() {
        let budget = BodyBudget::new(1 << 20);
        let mut a = budget.reserve(FIRST_SHARE, None).await.unwrap();
        a.cover(768 << 10).unwrap();
        a.cover(512 << 10).unwrap();
        assert_eq!(a.bytes(), 768 << 10, "a share never shrinks while held");
        let b = budget.reserve(FIRST_SHARE, None).await.unwrap();
        let err = a.cover(1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                BodyError::OverBudget {
                    budget: 1_048_576,
                    held: 786_432
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("the 1 MiB they may hold together"), "{msg}");
        assert!(msg.contains("this one had 768 KiB"), "{msg}");
        assert_eq!(budget.available(), (1 << 20) - (768 << 10) - FIRST_SHARE);
        drop(a);
        assert_eq!(budget.available(), (1 << 20) - FIRST_SHARE);
        drop(b);
        assert_eq!(budget.available(), budget.total());
    }

    /// A call that finds the budget full waits for its first share, and gets it as soon as
    /// another answer is dropped, before a growing body can take it; with none dropped by its
    /// deadline it fails naming the budget.
    #[tokio::test(start_paused = true)]
    async fn a_call_waits_for_room_until_its_deadline_and_comes_first() {
        let budget = BodyBudget::new(256 << 10);
        let full = budget.reserve(192 << 10, None).await.unwrap();
        let mut growing = budget.reserve(FIRST_SHARE, None).await.unwrap();
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_secs(5);
        let err = budget
            .reserve(FIRST_SHARE, Some(deadline))
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        let msg = err.to_string();
        assert!(msg.contains("all of the 256 KiB"), "{msg}");
        assert!(msg.contains("until the poll's deadline"), "{msg}");

        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(FIRST_SHARE, None).await.map(|s| s.bytes()) }
        });
        tokio::task::yield_now().await;
        drop(full);
        assert!(
            growing.cover(256 << 10).is_err(),
            "the waiting call was served first"
        );
        assert_eq!(waiting.await.unwrap().unwrap(), FIRST_SHARE);
        growing.cover(128 << 10).unwrap();
    }

    /// Serves `body` once, chunked in pieces of `piece` bytes (forever when `endless`), and
    /// returns its URL.
    async fn chunked_server(body: Vec<u8>, piece: usize, endless: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            loop {
                for p in body.chunks(piece) {
                    let mut c = format!("{:x}\r\n", p.len()).into_bytes();
                    c.extend_from_slice(p);
                    c.extend_from_slice(b"\r\n");
                    if s.write_all(&c).await.is_err() {
                        return;
                    }
                }
                if !endless {
                    let _ = s.write_all(b"0\r\n\r\n").await;
                    return;
                }
            }
        });
        url
    }

    /// A page is read whole however it is chunked, and holds of the budget no more than a
    /// block above what arrived (a buffer doubling on its way holds up to twice that); when it
    /// is dropped, the share comes back.
    #[tokio::test]
    async fn a_page_holds_no_more_than_a_block_above_what_arrived() {
        let body: Vec<u8> = (0..(3 << 20) + 12_345).map(|i| (i % 251) as u8).collect();
        let url = chunked_server(body.clone(), 40_000, false).await;
        let resp = reqwest::get(&url).await.unwrap();
        let budget = BodyBudget::new(BODY_BUDGET_BYTES);
        let mut share = budget.reserve(FIRST_SHARE, None).await.unwrap();
        let read = read_budgeted(resp, MAX_PAGE_BYTES, &mut share)
            .await
            .unwrap();
        assert!(read == body, "the page arrived as sent");
        assert!(share.bytes() >= body.len(), "{}", share.bytes());
        assert!(share.bytes() - body.len() < BLOCK, "{}", share.bytes());
        drop(share);
        assert_eq!(budget.available(), budget.total());
    }

    /// An answer that never ends stops at the cap, or sooner at the budget, holding no more
    /// than either: the limit it reached is named.
    #[tokio::test]
    async fn an_endless_answer_stops_at_the_cap_or_the_budget() {
        let url = chunked_server(vec![b' '; 65_536], 16_384, true).await;
        let budget = BodyBudget::new(4 << 20);
        let mut share = budget.reserve(FIRST_SHARE, None).await.unwrap();
        let err = read_budgeted(reqwest::get(&url).await.unwrap(), 3 << 20, &mut share)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                BodyError::TooLarge {
                    limit: 3_145_728,
                    announced: None
                }
            ),
            "{err:?}"
        );
        assert!(share.bytes() <= 3 << 20, "{}", share.bytes());
        drop(share);

        let url = chunked_server(vec![b' '; 65_536], 16_384, true).await;
        let _other = budget.reserve(2 << 20, None).await.unwrap();
        let mut share = budget.reserve(FIRST_SHARE, None).await.unwrap();
        let err = read_budgeted(reqwest::get(&url).await.unwrap(), 3 << 20, &mut share)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("reached the 4 MiB they may hold together"),
            "{err}"
        );
        assert!(share.bytes() <= 2 << 20, "{}", share.bytes());
    }

    #[test]
    fn status_table() {
        let table = [
            (400, Retry::Never),
            (401, Retry::RenewToken),
            (403, Retry::Never),
            (404, Retry::Never),
            (408, Retry::Later),
            (429, Retry::Later),
            (500, Retry::Later),
            (502, Retry::Later),
            (503, Retry::Later),
            (504, Retry::Later),
        ];
        for (status, want) in table {
            assert_eq!(classify_status(status), want, "{status}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn server_chosen_waits_are_clamped() {
        let mut h = reqwest::header::HeaderMap::new();
        for v in [
            "18446744073709551615",
            "99999999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "{v}");
        }
        assert!(later(tokio::time::Instant::now(), Duration::MAX).is_none());
    }

    #[test]
    fn sizes_and_bodies_are_described() {
        assert_eq!(size(MAX_PAGE_BYTES as u64), "128 MiB");
        assert_eq!(size(BODY_BUDGET_BYTES as u64), "512 MiB");
        assert_eq!(size((3 << 20) / 2), "1.5 MiB");
        assert_eq!(size(MAX_TOKEN_BYTES as u64), "256 KiB");
        assert_eq!(size(100), "100 bytes");
        let d = describe_body(
            Some("text/html; charset=utf-8"),
            b"<html>\n<title>Proxy login</title>\x07</html>",
        );
        assert!(d.contains("text/html"), "{d}");
        assert!(d.contains("<title>Proxy login</title>"), "{d}");
        assert!(!d.contains('\n') && !d.contains('\x07'), "{d}");
        assert!(d.contains("captive portal"), "{d}");
        assert!(!describe_body(Some("application/json"), b"{}").contains("portal"));
    }
}
