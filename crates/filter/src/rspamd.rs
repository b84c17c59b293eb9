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
//! The HTTP client is [`crate::http`]: a few lines of HTTP/1.1 on persistent loopback
//! connections (`[filter] rspamd_keepalive` idle ones kept), not a general HTTP stack.
//! Of rspamd's answer only the fields above are decoded; the rest (the symbols, most of
//! the answer) is skipped unread into values.

use crate::http::Endpoint;
use crate::{Envelope, Scan, Verdict};
use letterbox_config::Filter as FilterConfig;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

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
            scan: Endpoint::parse(&cfg.rspamd, cfg.rspamd_keepalive as usize),
            // Learning is rare (a user moving mail): a connection per request.
            controller: Endpoint::parse(&cfg.rspamd_controller, 0),
            password: cfg.rspamd_password.clone(),
            timeout: Duration::from_secs(cfg.rspamd_timeout.max(1)),
        }
    }

    /// Scans a message.
    pub async fn check(&self, env: &Envelope, body: &[u8]) -> Result<Report, String> {
        let ep = self.scan.as_ref().ok_or("filter.rspamd is not a valid URL")?;
        let ip = env.ip.to_string();
        let (id, sender, helo) = (clean(&env.id), clean(&env.sender), clean(&env.helo));
        let rcpts: Vec<Cow<str>> = env.rcpts.iter().map(|r| clean(r)).collect();
        let mut headers: Vec<(&str, &str)> = vec![("IP", &ip), ("Queue-Id", &id), ("From", &sender)];
        if !helo.is_empty() {
            headers.push(("Helo", &helo));
        }
        for r in &rcpts {
            headers.push(("Rcpt", r));
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
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !self.password.is_empty() {
            headers.push(("Password", &self.password));
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

/// Header values on one line, without control characters, 1000 characters at most.
fn clean(s: &str) -> Cow<'_, str> {
    if s.len() <= 1000 && !s.chars().any(|c| c.is_control()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().filter(|c| !c.is_control()).take(1000).collect())
}

/// One `POST`, answering the body of a 200 response.
async fn post(
    ep: &Endpoint,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let answer = ep.post(path, headers, body).await?;
    if answer.status != 200 {
        let text = String::from_utf8_lossy(&answer.body);
        return Err(format!("HTTP {}: {}", answer.status, clean(text.trim())));
    }
    Ok(answer.body)
}

/// The fields of a `/checkv2` answer we use; serde skips the others (the symbols)
/// without building them.
#[derive(Deserialize)]
struct CheckAnswer<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    score: Option<f64>,
    required_score: Option<f64>,
    #[serde(borrow)]
    milter: Option<Milter<'a>>,
    #[serde(borrow)]
    messages: Option<Messages<'a>>,
}

#[derive(Deserialize)]
struct Milter<'a> {
    #[serde(borrow, default)]
    add_headers: BTreeMap<Cow<'a, str>, HeaderValue<'a>>,
}

/// `"value"` or `{"value": "...", "order": n}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValue<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Object {
        #[serde(borrow)]
        value: Option<Cow<'a, str>>,
    },
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Messages<'a> {
    #[serde(borrow)]
    smtp_message: Option<Cow<'a, str>>,
}

/// Reads a `/checkv2` answer.
pub fn parse_report(json: &[u8]) -> Result<Report, String> {
    let v: CheckAnswer =
        serde_json::from_slice(json).map_err(|e| format!("malformed answer: {e}"))?;
    let action = v.action.ok_or("answer without an action")?.to_ascii_lowercase();
    let mut add_headers = Vec::new();
    for (name, val) in v.milter.map(|m| m.add_headers).unwrap_or_default() {
        let value = match val {
            HeaderValue::Text(s) => Some(s),
            HeaderValue::Object { value } => value,
            HeaderValue::Other(_) => None,
        };
        let ok_name = !name.is_empty()
            && name.len() <= 76
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if let (Some(value), true) = (value, ok_name) {
            add_headers.push((name.into_owned(), clean(&value).into_owned()));
        }
    }
    Ok(Report {
        action,
        score: v.score.unwrap_or(0.0),
        required: v.required_score.unwrap_or(0.0),
        add_headers,
        smtp_message: v
            .messages
            .and_then(|m| m.smtp_message)
            .map(|m| clean(&m).into_owned()),
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
