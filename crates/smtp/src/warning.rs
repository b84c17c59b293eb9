//! The quota warning message: what a user finds in the INBOX when a delivery takes the
//! mailbox across a `[quota] warn_at` threshold (80% and 95% by default).
//!
//! The store decides when a threshold is crossed (`Appended::crossed_warning`, one per
//! upward crossing, re-armed when usage falls back); this module writes the message and
//! stores it. It is public so that other protocols that add mail (IMAP APPEND, ...) can
//! deliver the same warning: call [`deliver`] with the `crossed_warning` they got.
//!
//! The warning is appended without quota enforcement: it must reach a nearly full box.
//! It never triggers a warning itself (`Backend::append_notice`): a crossing that only
//! the warning's own octets would make is reported by the next real delivery.
//! It is an automatic message (RFC 3834 `Auto-Submitted: auto-generated`) from the
//! postmaster of the account's own domain.

use letterbox_config::Config;
use letterbox_store::{Account, AccountId, NewMessage, Retention, Store};
use mail_builder::MessageBuilder;
use std::sync::Arc;

/// The subject line, e.g. `Your mailbox is 80% full`.
pub fn subject(threshold: u8) -> String {
    format!("Your mailbox is {threshold}% full")
}

pub use letterbox_proto::human_size;

fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for para in text.split('\n') {
        let indent: String = para.chars().take_while(|c| *c == ' ').collect();
        let hang = if para.trim_start().starts_with("- ") {
            format!("{indent}  ")
        } else {
            indent.clone()
        };
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                out.push_str(line.trim_end());
                out.push('\n');
                line = hang.clone();
            } else if !line.is_empty() && line != hang {
                line.push(' ');
            } else if line.is_empty() {
                line.push_str(&indent);
            }
            line.push_str(word);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The warning's text (plain, wrapped at 72 columns).
pub fn text(account: &Account, threshold: u8, hostname: &str, warn_at: &[u8]) -> String {
    let usage = match account.effective_limit {
        Some(limit) => format!(
            "It now holds {} of its {} limit ({}% used).",
            human_size(account.quota_used),
            human_size(limit),
            account.percent_used()
        ),
        None => format!("It now holds {}.", human_size(account.quota_used)),
    };
    let mut t = format!(
        "Hello,\n\
         \n\
         Your mailbox {addr} has passed {threshold}% of its size limit. {usage}\n\
         \n\
         What happens when it is full: new mail sent to you is not delivered. It is returned \
         to its senders (\"bounced\") with a notice that your mailbox is full, and you will \
         not see it.\n\
         \n\
         What you can do to make room:\n\
         - Delete mail you no longer need, above all old messages with large attachments \
         (sorting a folder by size shows them first).\n\
         - Empty the Trash folder: deleted mail still counts until the Trash is emptied. \
         Look at the Junk and Sent folders too.\n\
         - If you need to keep everything, ask your mail administrator for a larger quota.\n",
        addr = account.address,
    );
    if account.effective_retention == Retention::Keep {
        t.push_str(&format!(
            "\n\
             If you read your mail with a program that uses POP3 and leaves the messages on \
             the server, your mailbox fills up over time even though the mail is already on \
             your computer. In that program, turn on the option to remove messages from the \
             server after retrieving them, or ask your administrator to make the server do it \
             for you. For example, this removes retrieved mail after 30 days:\n\
             \n    letterbox user set {addr} pop3-retention 30d\n",
            addr = account.address,
        ));
    }
    let thresholds: Vec<String> = warn_at.iter().map(|p| format!("{p}%")).collect();
    t.push_str(&format!(
        "\n\
         This message was sent automatically by the mail server {hostname}. You get one such \
         warning each time your mailbox passes {}.\n",
        if thresholds.is_empty() {
            format!("{threshold}%")
        } else {
            thresholds.join(" and ")
        }
    ));
    wrap(&t, 72)
}

/// The whole warning message (RFC 5322, CRLF line ends).
pub fn build(
    account: &Account,
    threshold: u8,
    hostname: &str,
    warn_at: &[u8],
    now: i64,
) -> Vec<u8> {
    build_with_link(account, threshold, hostname, warn_at, now, None)
}

/// The warning message, with a link to the portal's usage page when it is on
/// (`letterbox_config::Config::web_usage_url`).
pub fn build_with_link(
    account: &Account,
    threshold: u8,
    hostname: &str,
    warn_at: &[u8],
    now: i64,
    usage_url: Option<&str>,
) -> Vec<u8> {
    let domain = account
        .address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(hostname);
    let postmaster = format!("postmaster@{domain}");
    let message_id = format!(
        "quota-warning.{}.{}.{}@{}",
        account.id,
        threshold,
        crate::trace::new_id(),
        hostname
    );
    let built = MessageBuilder::new()
        .from(("Mail System", postmaster.as_str()))
        .to(account.address.as_str())
        .subject(subject(threshold))
        .date(now)
        .message_id(message_id.as_str())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(match usage_url {
            Some(url) => format!(
                "{}\nSee what fills your mailbox, free space and ask for more room:\n{url}\n",
                text(account, threshold, hostname, warn_at)
            ),
            None => text(account, threshold, hostname, warn_at),
        })
        .write_to_vec();
    match built {
        Ok(v) => v,
        // Writing to a Vec does not fail; keep a minimal message should it ever.
        Err(_) => format!(
            "From: <{postmaster}>\r\nTo: <{}>\r\nSubject: {}\r\n\r\n",
            account.address,
            subject(threshold)
        )
        .into_bytes(),
    }
}

/// Delivers the account's pending quota warning, if any, into its INBOX (never refused
/// for quota). The warning is stored as a notice (`Backend::append_notice`): its own
/// octets never arm another warning, so one delivery gives at most one. The store
/// hands each crossing's warning to exactly one taker (`take_pending_warning`), so the
/// delivery path that crossed it, `letterbox deliver`, and serve's periodic sweep (which
/// covers IMAP APPEND and COPY) never send it twice. Returns how many were delivered.
pub async fn deliver_pending(
    store: &Store,
    config: &Config,
    account_id: AccountId,
) -> letterbox_store::Result<u32> {
    let mut sent = 0;
    for _ in 0..=config.quota.warn_at.len() {
        let Some(threshold) = store
            .run(move |s| s.take_pending_warning(account_id))
            .await?
        else {
            break;
        };
        let account = store.run(move |s| s.account_by_id(account_id)).await?;
        let inbox = store.run(move |s| s.mailbox(account_id, "INBOX")).await?.id;
        let now = letterbox_store::now();
        let msg = build_with_link(
            &account,
            threshold,
            &config.hostname,
            &config.quota.warn_at,
            now,
            config.web_usage_url().as_deref(),
        );
        let appended = store
            .run(move |s| {
                s.append_notice(
                    inbox,
                    NewMessage {
                        prefix: Vec::new(),
                        body: Arc::new(msg),
                        flags: Default::default(),
                        keywords: Vec::new(),
                        internal_date: now,
                    },
                )
            })
            .await?;
        sent += 1;
        tracing::info!(
            account = %account.address,
            threshold,
            uid = appended.uid,
            "quota warning delivered: mailbox passed {threshold}% ({}% used)",
            account.percent_used()
        );
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(retention: Retention) -> Account {
        Account {
            id: 7,
            address: "alice@example.com".into(),
            quota_limit: letterbox_store::QuotaLimit::Bytes(200 << 20),
            effective_limit: Some(200 << 20),
            quota_used: 170 << 20,
            pop3_retention: None,
            effective_retention: retention,
        }
    }

    #[test]
    fn text_says_what_and_what_to_do() {
        let t = text(&account(Retention::Keep), 80, "mx.example.com", &[80, 95]);
        for want in [
            "alice@example.com",
            "80%",
            "170 MiB of its 200 MiB",
            "85% used",
            "bounced",
            "Trash",
            "attachments",
            "larger quota",
            "POP3",
            "pop3-retention",
        ] {
            assert!(t.contains(want), "{want} missing from:\n{t}");
        }
        assert!(t.lines().all(|l| l.len() <= 72 || !l.contains(' ')), "{t}");
        let t = text(
            &account(Retention::Days(30)),
            95,
            "mx.example.com",
            &[80, 95],
        );
        assert!(!t.contains("POP3"), "{t}");
    }

    #[test]
    fn message_headers() {
        let m = build(
            &account(Retention::Keep),
            95,
            "mx.example.com",
            &[80, 95],
            1_700_000_000,
        );
        let s = String::from_utf8(m).unwrap();
        assert!(s.contains("Subject: Your mailbox is 95% full\r\n"), "{s}");
        assert!(s.contains("postmaster@example.com"), "{s}");
        assert!(
            s.contains("To: <alice@example.com>") || s.contains("To: alice@example.com"),
            "{s}"
        );
        assert!(s.contains("Auto-Submitted: auto-generated\r\n"), "{s}");
        assert!(!s.replace("\r\n", "").contains('\n'), "bare LF in {s}");
        assert_eq!(human_size(900), "900 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200 << 20), "200 MiB");
    }
}
