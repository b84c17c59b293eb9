//! Delivery status notifications (RFC 3464 `multipart/report; report-type=
//! delivery-status`, RFC 6522), built with mail-builder: a human-readable part, the
//! machine-readable `message/delivery-status` part (per-message fields, then one group
//! per recipient: Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
//! Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until), and the original message's
//! header (`text/rfc822-headers`, RFC 6522) or, with RET=FULL (RFC 3461 4.3), the whole
//! message (`message/rfc822`). The text names each recipient as the sender gave it;
//! Final-Recipient is the form sent (A-label domain, RFC 6533 `utf-8` type when the
//! local part is not ASCII). From the null sender, so that it is never bounced
//! (RFC 5321 6.1, RFC 3461 6.2), marked `Auto-Submitted: auto-replied` (RFC 3834).

use letterbox_store::queue::QueuedMessage;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
        }
    }
}

/// One recipient's line in the report.
#[derive(Debug, Clone)]
pub struct Entry {
    pub address: String,
    pub orcpt: Option<String>,
    pub action: Action,
    /// The remote reply or our reason (`550 5.1.1 ...`).
    pub diagnostic: String,
}

/// The RFC 3463 status in a reply text (`550 5.1.1 ...` gives 5.1.1), else X.0.0.
pub fn status_of(diagnostic: &str, action: Action) -> String {
    let found = diagnostic.split_whitespace().take(3).find(|w| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    match (found, action) {
        (Some(s), _) => s.to_string(),
        (None, Action::Failed) => "5.0.0".into(),
        (None, Action::Delayed) => "4.0.0".into(),
        (None, Action::Delivered) => "2.0.0".into(),
    }
}

/// The header block of a message (up to the blank line).
fn header_of(body: &[u8]) -> &[u8] {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(body.len());
    &body[..end]
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The Final-Recipient value (RFC 3464 2.3.2): the address as it was sent, its domain
/// an A-label (RFC 5890); `rfc822; ...` when that is ASCII, else RFC 6533's
/// `utf-8; ...` in its 7-bit form (utf-8-addr-xtext: `\x{HEX}` for each non-ASCII
/// character and for `\`, `+`, `=`, controls and space), since this part is 7-bit.
pub fn final_recipient(address: &str) -> String {
    let wire = letterbox_outbound::wire_address(address);
    if wire.is_ascii() {
        return format!("rfc822; {}", clean(&wire));
    }
    let mut out = String::from("utf-8; ");
    for c in wire.chars() {
        if c.is_ascii_graphic() && !matches!(c, '\\' | '+' | '=') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", c as u32));
        }
    }
    out
}

/// `s` with each non-ASCII character as RFC 5137's `\x{HEX}`: the delivery-status part
/// is 7-bit (a UTF-8 address in a reason stays readable in the text part).
fn seven_bit(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", c as u32));
        }
    }
    out
}

/// Builds the report for `msg` (whose octets are `body`) about `entries`.
pub fn build(
    hostname: &str,
    msg: &QueuedMessage,
    body: &[u8],
    entries: &[Entry],
    now: i64,
    retry_until: Option<i64>,
) -> Vec<u8> {
    let action = entries.first().map(|e| e.action).unwrap_or(Action::Failed);
    let subject = match action {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed => "Delayed Mail (still being retried)",
        Action::Delivered => "Successful Mail Delivery Report",
    };
    let mut human = format!("This is the mail system at host {hostname}.\r\n\r\n");
    human.push_str(match action {
        Action::Failed => "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.\r\n",
        Action::Delayed => "Your message could not be delivered yet to one or more recipients.\r\nIt will be retried; you do not need to send it again.\r\n",
        Action::Delivered => "Your message was successfully delivered to the destination(s) listed below.\r\n",
    });
    human.push_str("\r\n");
    for e in entries {
        human.push_str(&format!("<{}>: {}\r\n", e.address, clean(&e.diagnostic)));
    }
    let mut status = format!("Reporting-MTA: dns; {hostname}\r\n");
    if let Some(id) = &msg.envid {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", clean(id)));
    }
    status.push_str(&format!("Arrival-Date: {}\r\n", rfc822_date(msg.created)));
    for e in entries {
        status.push_str("\r\n");
        if let Some(o) = &e.orcpt {
            status.push_str(&format!("Original-Recipient: rfc822; {}\r\n", clean(o)));
        }
        status.push_str(&format!(
            "Final-Recipient: {}\r\n",
            final_recipient(&e.address)
        ));
        status.push_str(&format!("Action: {}\r\n", e.action.as_str()));
        status.push_str(&format!(
            "Status: {}\r\n",
            status_of(&e.diagnostic, e.action)
        ));
        if !e.diagnostic.is_empty() {
            status.push_str(&format!(
                "Diagnostic-Code: smtp; {}\r\n",
                seven_bit(&clean(&e.diagnostic))
            ));
        }
        status.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc822_date(now)));
        if let (Action::Delayed, Some(t)) = (e.action, retry_until) {
            status.push_str(&format!("Will-Retry-Until: {}\r\n", rfc822_date(t)));
        }
    }
    let eight_bit = body.iter().any(|b| *b >= 0x80);
    let cte = if eight_bit { "8bit" } else { "7bit" };
    let original = if msg.ret_full && action != Action::Delayed {
        MimePart::new("message/rfc822", body.to_vec())
            .header("Content-Transfer-Encoding", Raw::new(cte))
    } else {
        let h = header_of(body);
        let hcte = if h.iter().any(|b| *b >= 0x80) {
            "8bit"
        } else {
            "7bit"
        };
        MimePart::new("text/rfc822-headers", h.to_vec())
            .header("Content-Transfer-Encoding", Raw::new(hcte))
    };
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                human,
            ),
            MimePart::new("message/delivery-status", status.into_bytes())
                .header("Content-Transfer-Encoding", Raw::new("7bit")),
            original,
        ],
    );
    let message_id = format!("dsn.{}.{}.{}@{}", msg.id, now, action.as_str(), hostname);
    let from = format!("MAILER-DAEMON@{hostname}");
    MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(msg.sender.as_str())
        .subject(subject)
        .date(now)
        .message_id(message_id.as_str())
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

/// RFC 5322 date-time in UTC.
pub fn rfc822_date(t: i64) -> String {
    mail_builder::headers::date::Date::new(t).to_rfc822()
}

#[cfg(test)]
mod tests {
    use super::final_recipient;

    #[test]
    fn final_recipient_forms() {
        assert_eq!(final_recipient("x@example.com"), "rfc822; x@example.com");
        assert_eq!(
            final_recipient("User@bücher.example"),
            "rfc822; User@xn--bcher-kva.example"
        );
        // RFC 6533 3: utf-8-addr-xtext, 7-bit.
        assert_eq!(
            final_recipient("jösé+a@bücher.example"),
            "utf-8; j\\x{F6}s\\x{E9}\\x{2B}a@xn--bcher-kva.example"
        );
        assert_eq!(final_recipient("日@x.test"), "utf-8; \\x{65E5}@x.test");
    }
}
