//! RFC 5322 section 3.4 address lists, read from a raw (unfolded) header value.
//!
//! Display names keep their RFC 2047 encoded words, as IMAP's ENVELOPE wants them; quoted
//! strings lose their quotes and backslashes. An address written without angle brackets
//! (`user@domain (Real Name)`, RFC 5322 3.4 `addr-spec` with a comment, the form of
//! RFC 822 era mailers and of many list archives) takes its last comment as the display
//! name, as Dovecot and Cyrus answer; other comments are dropped (a comment before the
//! address, or after a `<...>` form, names nothing). Groups become a start
//! marker (`mailbox` = the group name, `host` = `None`) and an end marker (all `None`), as
//! RFC 9051 section 7.5.2 lays out. A mailbox with no domain gets the host
//! `MISSING_DOMAIN`, and a missing local part `MISSING_MAILBOX`, as Dovecot answers, so
//! that `host = None` only ever means a group marker.

use serde::{Deserialize, Serialize};

/// One element of an IMAP envelope address list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: Option<String>,
    pub adl: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

impl Address {
    /// True for a group start or end marker.
    pub fn is_group_marker(&self) -> bool {
        self.host.is_none()
    }
    /// `mailbox@host`, for a real address.
    pub fn email(&self) -> Option<String> {
        Some(format!(
            "{}@{}",
            self.mailbox.as_ref()?,
            self.host.as_ref()?
        ))
    }
}

/// Upper bound on the addresses kept from one header (a hostile header cannot make the
/// stored structure huge).
const MAX_ADDRESSES: usize = 1000;

#[derive(Default)]
struct Pending {
    words: Vec<String>,
    word: String,
    angle: Option<String>,
    /// The last comment seen since the address began (outside its phrase's start).
    comment: Option<String>,
}

impl Pending {
    fn end_word(&mut self) {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
    }
    fn take(&mut self) -> Option<Address> {
        self.end_word();
        let words = std::mem::take(&mut self.words);
        let angle = self.angle.take();
        let comment = self.comment.take();
        let (name, spec) = match angle {
            Some(spec) => {
                let name = (!words.is_empty()).then(|| words.join(" "));
                (name, spec)
            }
            None if words.is_empty() => return None,
            None => (comment.filter(|c| !c.is_empty()), words.concat()),
        };
        let (adl, spec) = match spec.strip_prefix('@') {
            Some(_) => match spec.split_once(':') {
                Some((route, rest)) => (Some(route.to_string()), rest.to_string()),
                None => (None, spec),
            },
            None => (None, spec),
        };
        if spec.is_empty() && name.is_none() {
            return None;
        }
        let (mailbox, host) = match spec.rsplit_once('@') {
            Some((m, h)) => (m.to_string(), h.to_string()),
            None => (spec.clone(), String::new()),
        };
        Some(Address {
            name,
            adl,
            mailbox: Some(if mailbox.is_empty() {
                "MISSING_MAILBOX".into()
            } else {
                mailbox
            }),
            host: Some(if host.is_empty() {
                "MISSING_DOMAIN".into()
            } else {
                host
            }),
        })
    }
}

/// Parses an address list. Never fails; junk yields what can be read of it.
pub fn parse_address_list(value: &str) -> Vec<Address> {
    let mut out = Vec::new();
    let mut cur = Pending::default();
    let mut in_group = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() >= MAX_ADDRESSES {
            break;
        }
        match c {
            '"' => {
                let mut q = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                q.push(n);
                            }
                        }
                        '"' => break,
                        _ => q.push(c),
                    }
                }
                cur.word.push_str(&q);
            }
            '(' => {
                // The comment's text as written, inner parentheses kept, quoting
                // backslashes removed (what Dovecot gives as the name).
                let mut text = String::new();
                let mut depth = 1;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                text.push(n);
                            }
                            continue;
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    text.push(c);
                }
                cur.end_word();
                // Only a comment inside or after an address names it.
                if !cur.words.is_empty() {
                    cur.comment = Some(text);
                }
            }
            '<' => {
                cur.end_word();
                let mut spec = String::new();
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                    if !c.is_whitespace() {
                        spec.push(c);
                    }
                }
                cur.angle = Some(spec);
            }
            ':' if !in_group && cur.angle.is_none() => {
                cur.end_word();
                let name = std::mem::take(&mut cur.words).join(" ");
                cur.comment = None;
                out.push(Address {
                    mailbox: Some(name),
                    ..Address::default()
                });
                in_group = true;
            }
            ';' if in_group => {
                out.extend(cur.take());
                out.push(Address::default());
                in_group = false;
            }
            ',' => out.extend(cur.take()),
            c if c.is_whitespace() => cur.end_word(),
            c => cur.word.push(c),
        }
    }
    out.extend(cur.take());
    if in_group {
        out.push(Address::default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.map(Into::into),
            adl: None,
            mailbox: Some(mailbox.into()),
            host: Some(host.into()),
        }
    }

    #[test]
    fn plain_and_named() {
        assert_eq!(
            parse_address_list("alice@example.com"),
            vec![a(None, "alice", "example.com")]
        );
        assert_eq!(
            parse_address_list("Alice Smith <alice@example.com>, \"Bob, Jr.\" <bob@b.org>"),
            vec![
                a(Some("Alice Smith"), "alice", "example.com"),
                a(Some("Bob, Jr."), "bob", "b.org")
            ]
        );
        assert_eq!(
            parse_address_list("=?utf-8?q?J=C3=B6rg?= <j@x.de> (comment)"),
            vec![a(Some("=?utf-8?q?J=C3=B6rg?="), "j", "x.de")]
        );
        assert_eq!(
            parse_address_list("\"quoted \\\"name\\\"\" <q@x>"),
            vec![a(Some("quoted \"name\""), "q", "x")]
        );
    }

    #[test]
    fn names_from_comments() {
        let v = parse_address_list(
            "jane@x.net (Jane (the boss) Roe), \"Q\" <q@x.net> (not a name), (lead) c@x.net, \
             odd(inner)@x.net, b@x.net (one) (two), e@x.net (), f@x.net (a\\)b)",
        );
        let names: Vec<Option<&str>> = v.iter().map(|a| a.name.as_deref()).collect();
        assert_eq!(
            names,
            vec![
                Some("Jane (the boss) Roe"),
                Some("Q"),
                None,
                Some("inner"),
                Some("two"),
                None,
                Some("a)b")
            ]
        );
        assert_eq!(v[3], a(Some("inner"), "odd", "x.net"));
        // In a group, and not taken from the group's own phrase.
        let v = parse_address_list("Team (all): a@x, b@y (Bee);");
        assert_eq!(v[1], a(None, "a", "x"));
        assert_eq!(v[2], a(Some("Bee"), "b", "y"));
    }

    #[test]
    fn groups() {
        let v = parse_address_list("undisclosed-recipients:;");
        assert_eq!(
            v,
            vec![
                Address {
                    mailbox: Some("undisclosed-recipients".into()),
                    ..Default::default()
                },
                Address::default()
            ]
        );
        let v = parse_address_list("Team: a@x, B <b@y>; c@z");
        assert_eq!(v.len(), 5);
        assert_eq!(v[0].mailbox.as_deref(), Some("Team"));
        assert!(v[0].is_group_marker());
        assert_eq!(v[1], a(None, "a", "x"));
        assert_eq!(v[2], a(Some("B"), "b", "y"));
        assert_eq!(v[3], Address::default());
        assert_eq!(v[4], a(None, "c", "z"));
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse_address_list(""), vec![]);
        assert_eq!(parse_address_list("  ,, "), vec![]);
        assert_eq!(
            parse_address_list("nodomain"),
            vec![a(None, "nodomain", "MISSING_DOMAIN")]
        );
        assert_eq!(
            parse_address_list("<@route1,@route2:user@host>"),
            vec![Address {
                name: None,
                adl: Some("@route1,@route2".into()),
                mailbox: Some("user".into()),
                host: Some("host".into())
            }]
        );
        // Unterminated pieces do not panic.
        for junk in [
            "\"abc", "(abc", "<abc", "a:b", ";;;", "a@", "@", "<>", "x <>",
        ] {
            let _ = parse_address_list(junk);
        }
    }
}
