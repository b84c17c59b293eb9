//! Spam scanning with rspamd, through its HTTP protocol (rspamd's "protocol" document:
//! `POST /checkv2` with the message as the body and the envelope in request headers
//! `IP`, `Helo`, `From`, `Rcpt` (one per recipient), `Queue-Id`; a JSON answer with
//! `action`, `score`, `required_score` and optional `milter.add_headers`).
//!
//! The action decides (issue 13):
//! - `reject`: `550 5.7.1` at the end of DATA;
//! - `soft reject` and `greylist`: `451 4.7.1`, the sender retries;
//! - `add header` and `rewrite subject`: delivered to the Junk folder (`[filter]
//!   junk_folder`) with `X-Spam: Yes` (the subject is not rewritten: the folder says it);
//! - `no action`: delivered as usual.
//!
//! Every scanned message gets `X-Spam-Status` (`Yes`/`No`, score, required score,
//! action), plus any header rspamd's `milter_headers` module asks to add. rspamd down,
//! timing out (`[filter] rspamd_timeout`) or answering nonsense: `[filter] rspamd_down`
//! decides (accept, marked `X-Spam-Status: Unscanned`, with a warning in the log; or
//! `451 4.7.1`).
//!
//! Learning: `POST /learnspam` or `/learnham` on the controller (`[filter]
//! rspamd_controller`), the message as the body. It runs in its own task: the IMAP
//! command that moved the message does not wait for it.
//!
//! The HTTP client is a few lines of HTTP/1.1 (`Connection: close`, `Content-Length` or
//! chunked answers) on a tokio socket: rspamd listens on loopback and plain HTTP, and this
//! avoids pulling a general HTTP stack (hyper, reqwest) into the delivery path.

use crate::{Envelope, Scan, Verdict};
use letterbox_config::Filter as FilterConfig;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest answer read from rspamd.
const MAX_RESPONSE: usize = 4 << 20;

/// An HTTP endpoint: `host:port` and a base path.
#[derive(Debug, Clone)]
struct Endpoint {
    authority: String,
    base: String,
}

impl Endpoint {
    fn parse(url: &str) -> Option<Endpoint> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return None;
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Some(Endpoint {
            authority,
            base: path.to_string(),
        })
    }
}

pub struct Client {
    scan: Option<Endpoint>,
    controller: Option<Endpoint>,
    password: String,
    timeout: Duration,
}

/// rspamd's answer, as far as we use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub action: String,
    pub score: f64,
    pub required: f64,
    /// Headers to add (name, value), from `milter.add_headers`.
    pub add_headers: Vec<(String, String)>,
    /// `messages.smtp_message`, if any.
    pub smtp_message: Option<String>,
}

impl Client {
    pub fn new(cfg: &FilterConfig) -> Client {
        Client {
            scan: Endpoint::parse(&cfg.rspamd),
            controller: Endpoint::parse(&cfg.rspamd_controller),
            password: cfg.rspamd_password.clone(),
            timeout: Duration::from_secs(cfg.rspamd_timeout.max(1)),
        }
    }

    /// Scans a message.
    pub async fn check(&self, env: &Envelope, body: &[u8]) -> Result<Report, String> {
        let ep = self.scan.as_ref().ok_or("filter.rspamd is not a valid URL")?;
        let mut headers = vec![
            ("IP".to_string(), env.ip.to_string()),
            ("Queue-Id".to_string(), clean(&env.id)),
            ("From".to_string(), clean(&env.sender)),
        ];
        if !env.helo.is_empty() {
            headers.push(("Helo".into(), clean(&env.helo)));
        }
        for r in &env.rcpts {
            headers.push(("Rcpt".into(), clean(r)));
        }
        let answer = tokio::time::timeout(self.timeout, post(ep, "/checkv2", &headers, body))
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))??;
        parse_report(&answer)
    }

    /// Whether learning is configured.
    pub fn can_learn(&self) -> bool {
        self.controller.is_some()
    }

    /// Learns a message as spam or ham (`/learnspam`, `/learnham`). An error is
    /// `(transient, reason)`: rspamd unreachable, timing out or failing (HTTP 5xx) is
    /// worth another try; a refusal (HTTP 4xx: too few tokens, learn condition) is not.
    pub async fn learn(&self, spam: bool, message: &[u8]) -> Result<Learned, (bool, String)> {
        let ep = self
            .controller
            .as_ref()
            .ok_or((false, "filter.rspamd_controller is not set".to_string()))?;
        let mut headers = Vec::new();
        if !self.password.is_empty() {
            headers.push(("Password".to_string(), self.password.clone()));
        }
        let path = if spam { "/learnspam" } else { "/learnham" };
        let answer = match tokio::time::timeout(self.timeout, post(ep, path, &headers, message)).await {
            Err(_) => return Err((true, format!("no answer within {} s", self.timeout.as_secs()))),
            Ok(Err(e)) => {
                // Already learned is not a failure (rspamd answers it with HTTP 208 or 404).
                if e.contains("already learned") {
                    return Ok(Learned::Already);
                }
                let transient = !e.starts_with("HTTP 4");
                return Err((transient, e));
            }
            Ok(Ok(a)) => a,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| (true, format!("malformed answer: {e}")))?;
        if v.get("success").and_then(|s| s.as_bool()) == Some(true) {
            return Ok(Learned::Now);
        }
        let err = v.get("error").and_then(|e| e.as_str()).unwrap_or("refused");
        if err.contains("already learned") {
            Ok(Learned::Already)
        } else {
            Err((false, err.to_string()))
        }
    }
}

/// What a successful learn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// rspamd learned the message now.
    Now,
    /// rspamd had learned it in this class before.
    Already,
}

/// Waits between tries of a learn that failed for a transient reason (rspamd restarting,
/// busy compiling its rules): learning happens in the background, so it can wait.
pub const LEARN_RETRY_DELAYS: [Duration; 3] =
    [Duration::from_secs(2), Duration::from_secs(8), Duration::from_secs(30)];

/// Header values on one line, without control characters.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(1000).collect()
}

/// One `POST`, answering the body of a 200 response.
async fn post(
    ep: &Endpoint,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(&ep.authority)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", ep.authority))?;
    let mut req = format!(
        "POST {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        ep.base,
        ep.authority,
        body.len()
    );
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    (&mut s)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut resp)
        .await
        .map_err(|e| e.to_string())?;
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP answer")?;
    let head = String::from_utf8_lossy(&resp[..head_end]).to_string();
    let mut payload = resp[head_end + 4..].to_vec();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        payload = dechunk(&payload).ok_or("malformed chunked answer")?;
    }
    if status != 200 {
        let text = String::from_utf8_lossy(&payload);
        return Err(format!("HTTP {status}: {}", clean(text.trim())));
    }
    Ok(payload)
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Reads a `/checkv2` answer.
pub fn parse_report(json: &[u8]) -> Result<Report, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("malformed answer: {e}"))?;
    let action = v
        .get("action")
        .and_then(|a| a.as_str())
        .ok_or("answer without an action")?
        .to_ascii_lowercase();
    let score = v.get("score").and_then(|s| s.as_f64()).unwrap_or(0.0);
    let required = v.get("required_score").and_then(|s| s.as_f64()).unwrap_or(0.0);
    let mut add_headers = Vec::new();
    if let Some(h) = v
        .get("milter")
        .and_then(|m| m.get("add_headers"))
        .and_then(|h| h.as_object())
    {
        for (name, val) in h {
            let value = match val {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => {
                    o.get("value").and_then(|x| x.as_str()).map(String::from)
                }
                _ => None,
            };
            let ok_name = !name.is_empty()
                && name.len() <= 76
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if let (Some(value), true) = (value, ok_name) {
                add_headers.push((name.clone(), clean(&value)));
            }
        }
    }
    let smtp_message = v
        .get("messages")
        .and_then(|m| m.get("smtp_message"))
        .and_then(|m| m.as_str())
        .map(clean);
    Ok(Report {
        action,
        score,
        required,
        add_headers,
        smtp_message,
    })
}

impl Report {
    /// The spamtest value (RFC 5235: 1 clean .. 10 certainly spam).
    pub fn spamtest(&self) -> u32 {
        if self.score <= 0.0 || self.required <= 0.0 {
            return 1;
        }
        let r = (self.score / self.required).min(1.0);
        (1.0 + (r * 9.0).round()) as u32
    }

    /// What this report does to a scan.
    pub(crate) fn apply(&self, scan: &mut Scan) {
        let spam = matches!(
            self.action.as_str(),
            "add header" | "rewrite subject" | "reject" | "soft reject"
        );
        scan.spamtest = Some(self.spamtest());
        scan.headers.extend_from_slice(
            format!(
                "X-Spam-Status: {}, score={:.2} required={:.2} action=\"{}\"\r\n",
                if spam { "Yes" } else { "No" },
                self.score,
                self.required,
                clean(&self.action)
            )
            .as_bytes(),
        );
        for (name, value) in &self.add_headers {
            if name.eq_ignore_ascii_case("X-Spam-Status") {
                continue;
            }
            scan.headers
                .extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let text = |default: &str| {
            self.smtp_message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        match self.action.as_str() {
            "reject" => {
                scan.verdict = Verdict::Reject {
                    code: 550,
                    esc: "5.7.1",
                    text: text("Message rejected as spam"),
                }
            }
            "soft reject" => {
                scan.verdict = Verdict::Tempfail {
                    code: 451,
                    esc: "4.7.1",
                    text: text("Message deferred, try again later"),
                }
            }
            "greylist" => {
                scan.verdict = Verdict::Tempfail {
                    code: 451,
                    esc: "4.7.1",
                    text: text("Greylisted, try again later"),
                }
            }
            "add header" | "rewrite subject" => {
                scan.junk = true;
                if !self
                    .add_headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("X-Spam"))
                {
                    scan.headers.extend_from_slice(b"X-Spam: Yes\r\n");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        let r = parse_report(br#"{"is_skipped":false,"score":15.5,"required_score":15.0,"action":"add header","symbols":{},"milter":{"add_headers":{"X-Spam":"Yes","Bad:Name":"x","X-Rspamd-Server":{"value":"h1","order":0}}}}"#).unwrap();
        assert_eq!(r.action, "add header");
        assert_eq!(r.spamtest(), 10);
        let mut s = Scan::accept();
        r.apply(&mut s);
        assert!(s.junk);
        let h = String::from_utf8(s.headers).unwrap();
        assert!(h.starts_with("X-Spam-Status: Yes, score=15.50 required=15.00 action=\"add header\"\r\n"), "{h}");
        assert!(h.contains("X-Spam: Yes\r\n") && h.contains("X-Rspamd-Server: h1\r\n"));
        assert!(!h.contains("Bad"));
        let r = parse_report(br#"{"score":1.0,"required_score":15,"action":"no action","messages":{"smtp_message":"hi\r\nthere"}}"#).unwrap();
        let mut s = Scan::accept();
        r.apply(&mut s);
        assert!(!s.junk && s.verdict == Verdict::Accept);
        assert_eq!(r.smtp_message.as_deref(), Some("hithere"));
        let r = parse_report(br#"{"score":20,"required_score":15,"action":"reject"}"#).unwrap();
        let mut s = Scan::accept();
        r.apply(&mut s);
        assert!(matches!(s.verdict, Verdict::Reject { code: 550, .. }));
        assert!(parse_report(b"nonsense").is_err());
        assert!(parse_report(b"{}").is_err());
    }

    #[test]
    fn chunks_and_urls() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde");
        assert!(dechunk(b"zz\r\n").is_none());
        let e = Endpoint::parse("http://127.0.0.1:11333/").unwrap();
        assert_eq!((e.authority.as_str(), e.base.as_str()), ("127.0.0.1:11333", ""));
        assert_eq!(Endpoint::parse("http://localhost").unwrap().authority, "localhost:80");
        assert!(Endpoint::parse("https://x").is_none());
    }
}

/// Messages learned per MOVE/COPY at most (a user moving a whole folder does not queue
/// thousands of scans); the rest are skipped, and the log says so.
pub const MAX_LEARN_PER_MOVE: usize = 100;

/// Learns what a user moved or copied (IMAP MOVE/COPY), in the background: into the
/// Junk folder as spam, out of it (anywhere but Trash) as ham. `pairs` are (source UID,
/// new UID) in `dst`. Does nothing without `[filter] rspamd_controller`.
pub fn learn_moved(
    store: &letterbox_store::Store,
    config: &std::sync::Arc<letterbox_config::Config>,
    src: letterbox_store::MailboxId,
    dst: &letterbox_store::Mailbox,
    pairs: &[(u32, u32)],
) {
    use letterbox_store::SpecialUse;
    let filter = crate::Filter::shared(config);
    if pairs.is_empty() || !filter.rspamd().is_some_and(|c| c.can_learn()) {
        return;
    }
    let is_junk = |m: &letterbox_store::Mailbox| {
        m.special_use == Some(SpecialUse::Junk) || filter.is_junk(&m.name)
    };
    let store = store.clone();
    let dst = dst.clone();
    let mut uids: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    if uids.len() > MAX_LEARN_PER_MOVE {
        tracing::info!(
            "rspamd: learning only {MAX_LEARN_PER_MOVE} of {} moved messages",
            uids.len()
        );
        uids.truncate(MAX_LEARN_PER_MOVE);
    }
    let to_junk = is_junk(&dst);
    tokio::spawn(async move {
        let Ok(from) = store.run(move |s| s.mailbox_by_id(src)).await else {
            return;
        };
        let from_junk = from.special_use == Some(SpecialUse::Junk) || filter.is_junk(&from.name);
        let spam = match (from_junk, to_junk) {
            (false, true) => true,
            (true, false) if dst.special_use != Some(SpecialUse::Trash) => false,
            _ => return,
        };
        let Some(client) = filter.rspamd() else { return };
        for uid in uids {
            let id = dst.id;
            let octets = match store
                .run(move |s| s.open_message(id, uid)?.read_all().map_err(Into::into))
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!("rspamd: cannot read a moved message to learn it: {e}");
                    continue;
                }
            };
            let what = if spam { "spam" } else { "ham" };
            let mut delays = LEARN_RETRY_DELAYS.iter();
            loop {
                match client.learn(spam, &octets).await {
                    Ok(Learned::Now) => {
                        tracing::info!(account = dst.account_id, uid, "rspamd: learned as {what}")
                    }
                    Ok(Learned::Already) => tracing::info!(
                        account = dst.account_id,
                        uid,
                        "rspamd: learned as {what} (already known)"
                    ),
                    Err((true, e)) if delays.len() > 0 => {
                        let wait = *delays.next().unwrap_or(&Duration::from_secs(1));
                        tracing::info!(
                            account = dst.account_id,
                            uid,
                            "rspamd: learning as {what} failed ({e}), trying again in {} s",
                            wait.as_secs()
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Err((_, e)) => tracing::warn!(
                        account = dst.account_id,
                        uid,
                        "rspamd: learning as {what} failed: {e}"
                    ),
                }
                break;
            }
        }
    });
}
