//! Users' Sieve scripts at delivery: RFC 5228 (Sieve) with the `sieve-rs` interpreter
//! (Stalwart's, AGPL-3.0), and the extensions
//! - `fileinto` (RFC 5228 4.1), `envelope` (5228 5.4), `copy` (RFC 3894),
//! - `imap4flags` (RFC 5232), `body` (RFC 5173), `variables` (RFC 5229),
//! - `subaddress` (RFC 5233), `date` and `index` (RFC 5260), `relational` (RFC 5231),
//! - `regex` (draft-ietf-sieve-regex), `mailbox` (`:create`, RFC 5490),
//! - `spamtest`/`spamtestplus` (RFC 5235, fed by rspamd's score),
//! - `vacation` and `vacation-seconds` (RFC 5230, RFC 6131), `duplicate` (RFC 7352),
//! - `include` (RFC 6609, the account's own scripts), `environment` (RFC 5183),
//!   `encoded-character` (RFC 5228 2.4.2.4), `ihave` (RFC 5463), and the comparators
//!   `i;octet`, `i;ascii-casemap`, `i;ascii-numeric` (RFC 4790).
//!
//! Not offered: `reject`/`ereject` (no bounces without outbound delivery), `editheader`,
//! `enotify`, `mime` and the rest: a script that requires them is refused at upload, as
//! RFC 5228 2.10.5 asks of unknown extensions.
//!
//! Mail is never lost to a script (issue 13): a script that fails to compile, hits the
//! instruction limit (`[filter] sieve_max_instructions`), or fails at run time delivers
//! to INBOX, and the reason is logged. A `fileinto` into a folder that does not exist
//! creates it only with `:create` (RFC 5490 3.2); otherwise the message goes to INBOX
//! (the store decides, in the same transaction as the delivery).
//!
//! `redirect` (RFC 5228 4.2): a local address gets the message in its INBOX at once;
//! any other address gets it through the outbound queue (see [`crate::redirect`] for the
//! envelope and the loop control RFC 5228 4.2 asks for). At most
//! `[filter] sieve_max_redirects` per run (the interpreter skips the rest, so the
//! implicit keep stays unless something else placed the message); none to the user's own
//! address, and none for a message with `sieve_redirect_max_hops` `Received` fields.
//!
//! Vacation (RFC 5230): the interpreter already declines to answer null senders,
//! `MAILER-DAEMON`, `owner-*`/`*-request` addresses, messages with `List-*`,
//! `Auto-Submitted` (other than `no`), `Precedence: bulk`, and those that do not name the
//! user in To/Cc/Bcc; one reply per sender per `:days` is kept by the store
//! (`sieve_seen`). The reply's envelope sender is null (RFC 5230 5.1 recommends it, so
//! that it cannot start a loop). Replies are handed to [`Outgoing`]; the caller sends them.

use letterbox_config::Filter as FilterConfig;
use letterbox_store::{AccountId, Backend, Flags};
use sieve::compiler::grammar::{Capability, Comparator};
use sieve::runtime::RuntimeError;
use sieve::{Compiler, Envelope, Event, Input, Recipient, Runtime, Sieve, SpamStatus};
use letterbox_message::mail_parser::{
    Encoding, Message as MailMessage, MessagePart, PartType,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where a copy of the message goes, as the script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub mailbox: String,
    pub create: bool,
    pub flags: Flags,
    pub keywords: Vec<String>,
}

/// A message the script sends (vacation reply, redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Envelope sender; empty for the null sender.
    pub from: String,
    pub to: String,
    pub message: Vec<u8>,
}

/// What one script run decided for one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Copies to store; empty when the script discarded the message.
    pub targets: Vec<Target>,
    pub outgoing: Vec<Outgoing>,
    /// Redirect addresses (the caller delivers local ones; others fall back to INBOX).
    pub redirects: Vec<String>,
    /// Set when the script failed and the message goes to the default folder instead.
    pub error: Option<String>,
}

/// A script that does not compile: where and why (RFC 5804 PUTSCRIPT/CHECKSCRIPT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

/// What the message looks like to a script.
pub struct Message<'a> {
    pub account: AccountId,
    /// The recipient address as given at RCPT (`user+tag@domain` for subaddress).
    pub rcpt: &'a str,
    /// Envelope sender; empty for the null sender.
    pub sender: &'a str,
    /// The message as the script reads it (the headers the filter added, then the
    /// message), as mail-parser reads it; `None`: no header found. The delivery parses
    /// the message once, for the store and every recipient's script
    /// (`letterbox_message::parse_shared`, `letterbox_message::with_prefix`): asked for
    /// only when the account has an active script, once per run.
    pub parsed: &'a dyn Fn() -> Option<MailMessage<'a>>,
    /// rspamd's verdict for spamtest: 1 (clean) to 10 (spam); `None`: not scanned.
    pub spamtest: Option<u32>,
    /// Where the message goes without a script, or when the script keeps it (INBOX, or
    /// the Junk folder for spam).
    pub default_folder: &'a str,
}

/// Compiles and runs scripts. One per server: it caches each account's compiled active
/// script with the version of the account's scripts, so that a delivery reads and
/// compiles the script only after a change (see `Engine::active`).
pub struct Engine {
    compiler: Compiler,
    runtime: Runtime,
    max_size: usize,
    max_out: usize,
    cache: Mutex<HashMap<AccountId, Cached>>,
}

/// Accounts whose compiled script is kept; beyond, the cache starts again empty.
const MAX_CACHED: usize = 10_000;

/// An account's active script as last read: the version of the account's scripts it was
/// read at (`None`: the store keeps no versions), its text's hash, and the compiled
/// script (`None`: no active script).
struct Cached {
    version: Option<u64>,
    hash: [u8; 32],
    script: Option<Arc<Sieve>>,
    /// The account's address (the script's `:user` address), read with the script: an
    /// account's address never changes, and a new account that reuses a removed one's id
    /// has another scripts version, so it never meets this entry.
    address: Option<Arc<str>>,
}

/// An account's active script and the account's address, as a delivery needs them.
struct Active {
    script: Arc<Sieve>,
    address: Arc<str>,
}

/// Extensions offered (RFC 5804 SIEVE capability, and what `require` may name).
pub fn capabilities() -> Vec<Capability> {
    vec![
        Capability::FileInto,
        Capability::Envelope,
        Capability::EncodedCharacter,
        Capability::Comparator(Comparator::Octet),
        Capability::Comparator(Comparator::AsciiCaseMap),
        Capability::Comparator(Comparator::AsciiNumeric),
        Capability::Body,
        Capability::Copy,
        Capability::Relational,
        Capability::Date,
        Capability::Index,
        Capability::Duplicate,
        Capability::Variables,
        Capability::Environment,
        Capability::SubAddress,
        Capability::Vacation,
        Capability::VacationSeconds,
        Capability::Mailbox,
        Capability::Imap4Flags,
        Capability::Ihave,
        Capability::Include,
        Capability::Regex,
        Capability::SpamTest,
        Capability::SpamTestPlus,
    ]
}

/// The SIEVE capability string (space-separated extension names).
pub fn capability_string() -> String {
    capabilities()
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Engine {
    pub fn new(cfg: &FilterConfig, hostname: &str) -> Engine {
        let max_size = cfg.sieve_max_script_size.0.min(usize::MAX as u64) as usize;
        let compiler = Compiler::new().with_max_script_size(max_size.max(1));
        let mut runtime = Runtime::new()
            .with_cpu_limit(cfg.sieve_max_instructions.min(usize::MAX as u64) as usize)
            // sieve-rs counts redirects among the messages sent: room for both.
            .with_max_out_messages(cfg.sieve_max_out_messages.saturating_add(cfg.sieve_max_redirects) as usize)
            .with_max_redirects(cfg.sieve_max_redirects as usize)
            .with_max_received_headers(cfg.sieve_redirect_max_hops as usize)
            .with_default_vacation_expiry(cfg.vacation_default_days.saturating_mul(86400))
            .with_local_hostname(hostname.to_string())
            .with_env_variable("name", "Letterbox")
            .with_env_variable("host", hostname.to_string())
            .with_env_variable("domain", hostname.to_string())
            .with_env_variable("phase", "during");
        for c in Capability::all() {
            runtime.unset_capability(c.clone());
        }
        for c in capabilities() {
            runtime.set_capability(c);
        }
        Engine {
            compiler,
            runtime,
            max_size,
            max_out: cfg.sieve_max_out_messages as usize,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Compiles a script and checks that it requires only offered extensions: what an
    /// upload (CLI, ManageSieve PUTSCRIPT/CHECKSCRIPT) must pass.
    pub fn check(&self, script: &[u8]) -> Result<Arc<Sieve>, ScriptError> {
        if script.len() > self.max_size {
            return Err(ScriptError {
                line: 0,
                column: 0,
                message: format!(
                    "script too large ({} octets; filter.sieve_max_script_size is {})",
                    script.len(),
                    self.max_size
                ),
            });
        }
        let compiled = self.compiler.compile(script).map_err(|e| ScriptError {
            line: e.line_num(),
            column: e.line_pos(),
            message: e.to_string(),
        })?;
        let compiled = Arc::new(compiled);
        // `require` is checked when it runs, at the top of the script: a dry run on an
        // empty message stops at the first extension not offered.
        let mut ctx = self.runtime.filter(b"Subject: check\r\n\r\n");
        let mut input = Input::script("check", compiled.clone());
        let mut steps = 0;
        while let Some(r) = ctx.run(input) {
            steps += 1;
            match r {
                Err(RuntimeError::CapabilityNotAllowed(c)) => {
                    return Err(ScriptError {
                        line: 0,
                        column: 0,
                        message: format!("extension \"{c}\" is not supported by this server"),
                    })
                }
                Err(RuntimeError::CapabilityNotSupported(c)) => {
                    return Err(ScriptError {
                        line: 0,
                        column: 0,
                        message: format!("extension \"{c}\" is not supported by this server"),
                    })
                }
                _ => {}
            }
            if steps > 1000 {
                break;
            }
            input = Input::False;
        }
        Ok(compiled)
    }

    /// The account's active script, compiled (cached). `Ok(None)`: no active script.
    ///
    /// The cache holds each account's compiled script with the version of the account's
    /// scripts it was read at (`Backend::sieve_version`, changed by every put, activate,
    /// delete and rename, in this process or another: the CLI, ManageSieve): while the
    /// version is the same, a delivery reads one number from the store, not the script.
    /// A changed version reads the script again, and compiles it only if its text changed.
    fn active(&self, store: &dyn Backend, account: AccountId) -> Result<Option<Active>, String> {
        let version = store.sieve_version(account).map_err(|e| e.to_string())?;
        if let Some(v) = version {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(&account).filter(|c| c.version == Some(v)) {
                return Ok(match (&c.script, &c.address) {
                    (Some(s), Some(a)) => Some(Active { script: s.clone(), address: a.clone() }),
                    _ => None,
                });
            }
        }
        let Some((name, text)) = store.sieve_active(account).map_err(|e| e.to_string())? else {
            self.remember(account, Cached { version, hash: [0; 32], script: None, address: None });
            return Ok(None);
        };
        let hash = *blake3::hash(&text).as_bytes();
        let known = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account)
            .filter(|c| c.hash == hash)
            .and_then(|c| c.script.clone());
        let compiled = match known {
            Some(s) => s,
            None => Arc::new(self.compiler.compile(&text).map_err(|e| {
                format!(
                    "script '{name}' does not compile: line {}, column {}: {e}",
                    e.line_num(),
                    e.line_pos()
                )
            })?),
        };
        let address: Arc<str> = store
            .account_by_id(account)
            .map_err(|e| e.to_string())?
            .address
            .into();
        self.remember(
            account,
            Cached { version, hash, script: Some(compiled.clone()), address: Some(address.clone()) },
        );
        Ok(Some(Active { script: compiled, address }))
    }

    fn remember(&self, account: AccountId, c: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED && !cache.contains_key(&account) {
            cache.clear();
        }
        cache.insert(account, c);
    }

    /// Runs the account's active script on a message (blocking: it reads the store).
    /// Without a script, the message goes to `default_folder`. Never fails: any error
    /// delivers to the default folder and is reported in [`Outcome::error`].
    pub fn run(&self, store: &dyn Backend, msg: &Message) -> Outcome {
        let keep = || Target {
            mailbox: msg.default_folder.to_string(),
            create: false,
            flags: Flags::default(),
            keywords: Vec::new(),
        };
        let script = match self.active(store, msg.account) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Outcome {
                    targets: vec![keep()],
                    ..Outcome::default()
                }
            }
            Err(e) => {
                return Outcome {
                    targets: vec![keep()],
                    error: Some(e),
                    ..Outcome::default()
                }
            }
        };
        match self.execute(store, msg, script) {
            Ok(o) => o,
            Err(e) => Outcome {
                targets: vec![keep()],
                error: Some(e),
                ..Outcome::default()
            },
        }
    }

    fn execute(&self, store: &dyn Backend, msg: &Message, active: Active) -> Result<Outcome, String> {
        let Active { script, address } = active;
        let account_id = msg.account;
        // What sieve-rs reads when the message has no header (its own `Runtime::filter`
        // reads it the same way): an empty text body.
        let message = (msg.parsed)().unwrap_or_else(|| MailMessage {
            parts: vec![MessagePart {
                headers: vec![],
                is_encoding_problem: false,
                body: PartType::Text("".into()),
                encoding: Encoding::None,
                offset_header: 0,
                offset_body: 0,
                offset_end: 0,
            }],
            raw_message: b""[..].into(),
            ..Default::default()
        });
        let mut ctx = self
            .runtime
            .filter_parsed(message)
            .with_user_address(&*address)
            .with_envelope(Envelope::To, msg.rcpt);
        if !msg.sender.is_empty() {
            ctx.set_envelope(Envelope::From, msg.sender);
        }
        // RFC 5235: 0 is "not tested", 1 clean ... 10 spam.
        if let Some(n) = msg.spamtest {
            ctx.set_spam_status(SpamStatus::from(n.clamp(1, 10)));
        }
        let now = letterbox_store::now();
        let mut out = Outcome::default();
        let mut created: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut input = Input::script("active", script);
        let mut includes = 0;
        while let Some(event) = ctx.run(input) {
            input = Input::True;
            let event = match event {
                Ok(e) => e,
                Err(e) => return Err(runtime_error(e)),
            };
            match event {
                Event::IncludeScript { name, optional } => {
                    includes += 1;
                    let text = match store.sieve_get(account_id, name.as_str()) {
                        Ok(t) if includes <= 8 => t,
                        _ if optional => {
                            input = Input::False;
                            continue;
                        }
                        _ => return Err(format!("included script '{name}' not found")),
                    };
                    let s = self
                        .compiler
                        .compile(&text)
                        .map_err(|e| format!("included script '{name}': {e}"))?;
                    input = Input::script(name, Arc::new(s));
                }
                Event::MailboxExists { mailboxes, .. } => {
                    let all = mailboxes.iter().all(|m| match m {
                        sieve::Mailbox::Name(n) => store.mailbox(account_id, n).is_ok(),
                        sieve::Mailbox::Id(_) => false,
                    });
                    input = all.into();
                }
                Event::ListContains { .. } => input = false.into(),
                Event::DuplicateId { id, expiry, .. } => {
                    let expires = now.saturating_add(expiry.min(i64::MAX as u64) as i64);
                    let seen = store
                        .sieve_seen(account_id, &id, expires, now)
                        .map_err(|e| format!("duplicate tracking: {e}"))?;
                    input = seen.into();
                }
                Event::SetEnvelope { .. } | Event::Notify { .. } => {}
                Event::Function { .. } => input = false.into(),
                Event::Keep { flags, .. } => {
                    let (flags, keywords) = split_flags(&flags);
                    out.targets.push(Target {
                        mailbox: msg.default_folder.to_string(),
                        create: false,
                        flags,
                        keywords,
                    });
                }
                Event::FileInto {
                    folder,
                    flags,
                    create,
                    ..
                } => {
                    let (flags, keywords) = split_flags(&flags);
                    out.targets.push(Target {
                        mailbox: folder,
                        create,
                        flags,
                        keywords,
                    });
                }
                Event::Discard => {}
                Event::Reject { .. } => {
                    // Not offered (see the module doc); a script cannot get here.
                    return Err("reject is not supported".into());
                }
                Event::CreatedMessage {
                    message_id,
                    message,
                } => {
                    created.insert(message_id, message);
                }
                Event::SendMessage {
                    recipient,
                    message_id,
                    ..
                } => {
                    let to = match recipient {
                        Recipient::Address(a) => vec![a],
                        Recipient::List(l) => vec![l],
                        Recipient::Group(g) => g,
                    };
                    match created.remove(&message_id) {
                        // A message the script built (vacation): sent from the null sender.
                        Some(message) if message_id > 0 => {
                            for t in to.into_iter().take(self.max_out.max(1)) {
                                out.outgoing.push(Outgoing {
                                    from: String::new(),
                                    to: t,
                                    message: message.clone(),
                                });
                            }
                        }
                        // message_id 0: the message itself (redirect).
                        _ => out.redirects.extend(to),
                    }
                }
            }
        }
        Ok(out)
    }
}

fn runtime_error(e: RuntimeError) -> String {
    match e {
        RuntimeError::TooManyIncludes => "too many included scripts".into(),
        RuntimeError::InvalidInstruction(i) => format!(
            "invalid instruction '{}' at line {}, column {}",
            i.name(),
            i.line_num(),
            i.line_pos()
        ),
        RuntimeError::ScriptErrorMessage(m) => format!("script error: {m}"),
        RuntimeError::CapabilityNotAllowed(c) => format!("extension \"{c}\" is not supported"),
        RuntimeError::CapabilityNotSupported(c) => format!("extension \"{c}\" is not supported"),
        RuntimeError::CPULimitReached => {
            "script cut off: it reached filter.sieve_max_instructions".into()
        }
    }
}

/// imap4flags names: system flags (`\Seen`...) and keywords; `\Recent` is not settable.
fn split_flags(names: &[String]) -> (Flags, Vec<String>) {
    let mut flags = Flags::default();
    let mut keywords = Vec::new();
    for n in names {
        for n in n.split_whitespace() {
            if let Some(f) = Flags::parse(n) {
                flags = flags.union(f);
            } else if !n.starts_with('\\') && !keywords.iter().any(|k: &String| k.eq_ignore_ascii_case(n)) {
                keywords.push(n.to_string());
            }
        }
    }
    (flags, keywords)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::new(&FilterConfig::default(), "mx.example.com")
    }

    #[test]
    fn check_reports_line_and_column() {
        let e = engine();
        let err = e
            .check(b"require \"fileinto\";\r\nif header :contains \"Subject\" \"x\" {\r\n  fileinto \"A\"\r\n}\r\n")
            .unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.column > 0);
        assert!(e.check(b"require [\"fileinto\", \"imap4flags\"];\nfileinto :flags \"\\\\Seen\" \"A\";").is_ok());
    }

    #[test]
    fn check_refuses_extensions_not_offered() {
        let e = engine();
        let err = e.check(b"require \"reject\";\nreject \"no\";\n").unwrap_err();
        assert!(err.message.contains("reject"), "{err}");
        let err = e.check(b"require \"vnd.dovecot.pipe\";\nkeep;\n").unwrap_err();
        assert!(err.message.contains("not supported"), "{err}");
        let big = vec![b'#'; 70 * 1024];
        assert!(e.check(&big).unwrap_err().message.contains("too large"));
    }

    #[test]
    fn flags_split() {
        let (f, k) = split_flags(&["\\Seen $label1".into(), "\\Flagged".into(), "\\Recent".into()]);
        assert_eq!(f, Flags::SEEN.union(Flags::FLAGGED));
        assert_eq!(k, vec!["$label1".to_string()]);
    }
}
