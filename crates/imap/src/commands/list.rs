//! LIST (RFC 9051 6.3.9, with RFC 5258 LIST-EXTENDED selection and return options,
//! RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE, RFC 3348 CHILDREN) and LSUB (RFC 3501
//! 6.3.9, IMAP4rev1).
//!
//! `*` matches anything, `%` anything but the delimiter. A name that does not exist but
//! has mailboxes below it (`a` when only `a/b` exists: `CREATE a/b` makes no `a`, RFC
//! 9051 6.3.4) is listed whenever the pattern matches it, with `\HasChildren`, flagged
//! `\Noselect` for a plain IMAP4rev1 LIST (RFC 3501 6.3.8) and `\NonExistent` for
//! IMAP4rev2 sessions and LIST-EXTENDED syntax (RFC 5258 3.4), as Dovecot 2.3 answers.
//! A subscribed name that no longer exists is listed by `LIST (SUBSCRIBED)` with
//! `\NonExistent` (RFC 5258 3.1). A pattern that is not valid modified UTF-7 names no
//! mailbox: it matches nothing, and the command still answers OK. Every mailbox gets
//! `\HasChildren` or `\HasNoChildren` and its special-use attribute, always (RFC 6154
//! allows it; clients use it). With `(SUBSCRIBED RECURSIVEMATCH)`, a matching name
//! with subscribed descendants is listed (subscribed or not) with the extended data
//! item `("CHILDINFO" ("SUBSCRIBED"))` (RFC 5258 3.5), as Dovecot does.
//!
//! Special-folder aliases ([`crate::alias`]) are never listed. A folder that is named
//! like an alias but has no special use in the store shows the alias's attribute when
//! no other folder of the account has it (an account migrated with `Sent Items` and no
//! `\Sent`), so that two folders never show the same attribute.

use super::status;
use crate::parser::{ListOptions, MailboxArg};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::{Mailbox, DELIMITER};
use std::collections::{BTreeMap, BTreeSet};

/// IMAP wildcard match: `*` any characters, `%` any but the delimiter.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // dp[j]: pattern prefix matches name prefix of length j.
    let mut dp = vec![false; n.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '%' => {
                for j in 0..=n.len() {
                    next[j] =
                        dp[j] || (j > 0 && next[j - 1] && (pc == '*' || n[j - 1] != DELIMITER));
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = dp[j - 1] && n[j - 1] == c;
                }
            }
        }
        dp = next;
    }
    dp[n.len()]
}

/// Canonical spelling of an `INBOX` prefix in a pattern.
fn canonical_pattern(p: &str) -> String {
    if p.len() >= 5 && p.is_char_boundary(5) && p[..5].eq_ignore_ascii_case("INBOX") {
        let rest = &p[5..];
        if rest.is_empty() || rest.starts_with(DELIMITER) {
            return format!("INBOX{rest}");
        }
    }
    p.to_string()
}

fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER).map(move |(i, _)| &name[..i])
}

fn has_children(names: &BTreeMap<String, Option<String>>, name: &str) -> bool {
    let prefix = format!("{name}{DELIMITER}");
    names
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix))
}

/// The patterns as names (reference prepended). One that is not valid modified UTF-7
/// (`&'`, say: RFC 9051 5.1.3) can name no mailbox, so it is left out and matches
/// nothing; the LIST still answers OK (imaptest's `atoms`, as Dovecot).
fn full_patterns(s: &Session, reference: &MailboxArg, patterns: &[MailboxArg]) -> Vec<String> {
    let Some(r) = s.pattern(reference) else {
        return Vec::new();
    };
    patterns
        .iter()
        .filter_map(|p| s.pattern(p))
        .map(|p| canonical_pattern(&format!("{r}{p}")))
        .collect()
}

/// The special-use attribute of a mailbox, by the store or by a configured alias that
/// no other mailbox of the account has (see the module docs).
fn special_use(s: &Session, mb: &Mailbox, all: &[Mailbox]) -> Option<String> {
    if let Some(su) = mb.special_use {
        return Some(su.as_str().to_string());
    }
    let su = crate::alias::alias_use(s, &mb.name)?;
    (!all.iter().any(|m| m.special_use == Some(su))).then(|| su.as_str().to_string())
}

pub async fn list(
    s: &mut Session,
    reference: &MailboxArg,
    patterns: &[MailboxArg],
    opts: &ListOptions,
) -> Result<Reply, Fatal> {
    let Some(account) = s.account_id() else {
        return Ok(Reply::bad("Log in first"));
    };
    let pats = full_patterns(s, reference, patterns);
    // Dovecot's words: `\Noselect` for a plain IMAP4rev1 LIST, `\NonExistent` once the
    // client uses LIST-EXTENDED syntax (RFC 5258 3.4) or IMAP4rev2.
    let noselect = if s.rev1() && !opts.extended {
        "\\Noselect"
    } else {
        "\\NonExistent"
    };
    if !opts.extended && pats.len() == 1 && s.pattern(&patterns[0]).is_some_and(|p| p.is_empty()) {
        // RFC 9051 6.3.9: the hierarchy delimiter and root.
        s.conn.push(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
        return Ok(Reply::ok("LIST completed"));
    }
    let r = s
        .ctx
        .store
        .run(move |st| Ok((st.list_mailboxes(account)?, st.subscriptions(account)?)))
        .await;
    let (mailboxes, subs) = match r {
        Ok(v) => v,
        Err(e) => return Ok(store_error(&e)),
    };
    let subs: BTreeSet<String> = subs.into_iter().collect();
    let mut existing: BTreeMap<String, Option<String>> = BTreeMap::new();
    for mb in &mailboxes {
        existing.insert(mb.name.clone(), special_use(s, mb, &mailboxes));
    }
    let matches_any = |name: &str| pats.iter().any(|p| matches(p, name));
    // (name, attributes, selectable, CHILDINFO)
    let mut rows: Vec<(String, Vec<String>, bool, bool)> = Vec::new();
    let want_sub_attr = opts.subscribed || opts.return_subscribed;
    if opts.subscribed {
        // With RECURSIVEMATCH, the parents of subscribed names are candidates too.
        let mut names: BTreeSet<&str> = subs.iter().map(String::as_str).collect();
        if opts.recursive_match {
            for n in &subs {
                names.extend(ancestors(n));
            }
        }
        for name in names {
            if !matches_any(name) {
                continue;
            }
            let subscribed = subs.contains(name);
            let prefix = format!("{name}{DELIMITER}");
            // RFC 5258 3.5: CHILDINFO tells of subscribed descendants. As Dovecot, a
            // name that is not subscribed itself is listed for them only when the
            // patterns leave one of them out (one listed itself needs no parent).
            let childinfo = opts.recursive_match
                && subs
                    .range(prefix.clone()..)
                    .take_while(|k| k.starts_with(&prefix))
                    .any(|k| subscribed || !matches_any(k));
            if !subscribed && !childinfo {
                continue;
            }
            let mut attrs = Vec::new();
            match existing.get(name) {
                Some(su) => {
                    attrs.push(child_attr(&existing, name));
                    if let Some(su) = su {
                        attrs.push(su.clone());
                    }
                }
                None => attrs.push(noselect.to_string()),
            }
            if subscribed {
                attrs.push("\\Subscribed".into());
            }
            rows.push((
                name.to_string(),
                attrs,
                existing.contains_key(name),
                childinfo,
            ));
        }
    } else {
        let mut virtuals: BTreeSet<String> = BTreeSet::new();
        for name in existing.keys() {
            for a in ancestors(name) {
                if !existing.contains_key(a) {
                    virtuals.insert(a.to_string());
                }
            }
        }
        let mut all: Vec<(&String, bool)> = existing
            .keys()
            .map(|n| (n, true))
            .chain(virtuals.iter().map(|n| (n, false)))
            .collect();
        all.sort_by(|a, b| (a.0 != "INBOX", a.0).cmp(&(b.0 != "INBOX", b.0)));
        for (name, exists) in all {
            if !matches_any(name) {
                continue;
            }
            let su = existing.get(name).cloned().flatten();
            if opts.special_use_only && su.is_none() {
                continue;
            }
            let mut attrs = Vec::new();
            if exists {
                attrs.push(child_attr(&existing, name));
                if let Some(su) = su {
                    attrs.push(su);
                }
            } else {
                // A parent that is no mailbox (`a` of `CREATE a/b`), listed whenever
                // it matches, as Dovecot does.
                attrs.push(noselect.to_string());
                attrs.push("\\HasChildren".into());
            }
            if want_sub_attr && subs.contains(name) {
                attrs.push("\\Subscribed".into());
            }
            rows.push((name.clone(), attrs, exists, false));
        }
    }
    let status_items = opts.return_status.clone();
    let append_limit = s.append_limit();
    for (name, attrs, selectable, childinfo) in rows {
        let mut out = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        s.write_mailbox(&mut out, &name);
        if childinfo {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        if let (Some(items), true) = (&status_items, selectable) {
            let items2 = items.clone();
            let n = name.clone();
            let indexes = s.indexes.clone();
            if let Ok((mb, c)) = s
                .ctx
                .store
                .run(move |st| status::lookup(st, &indexes, account, &n))
                .await
            {
                out.extend_from_slice(b"* STATUS ");
                s.write_mailbox(&mut out, &name);
                out.push(b' ');
                out.extend_from_slice(
                    status::status_list(&mb, &c, &items2, append_limit).as_bytes(),
                );
                out.extend_from_slice(b"\r\n");
            }
        }
        s.conn.push(&out);
    }
    Ok(Reply::ok("LIST completed"))
}

fn child_attr(existing: &BTreeMap<String, Option<String>>, name: &str) -> String {
    if has_children(existing, name) {
        "\\HasChildren".into()
    } else {
        "\\HasNoChildren".into()
    }
}

pub async fn lsub(
    s: &mut Session,
    reference: &MailboxArg,
    pattern: &MailboxArg,
) -> Result<Reply, Fatal> {
    let Some(account) = s.account_id() else {
        return Ok(Reply::bad("Log in first"));
    };
    let pats = full_patterns(s, reference, std::slice::from_ref(pattern));
    let Some(p) = pats.first() else {
        return Ok(Reply::ok("LSUB completed"));
    };
    let subs = match s.ctx.store.run(move |st| st.subscriptions(account)).await {
        Ok(v) => v,
        Err(e) => return Ok(store_error(&e)),
    };
    let subs: BTreeSet<String> = subs.into_iter().collect();
    let mut names: BTreeMap<String, bool> = subs.iter().map(|n| (n.clone(), true)).collect();
    for n in &subs {
        for a in ancestors(n) {
            names.entry(a.to_string()).or_insert(false);
        }
    }
    for (name, subscribed) in names {
        if !matches(p, &name) {
            continue;
        }
        let attrs = if subscribed {
            ""
        } else {
            let prefix = format!("{name}{DELIMITER}");
            if !subs
                .iter()
                .any(|k| k.starts_with(&prefix) && !matches(p, k))
            {
                continue;
            }
            "\\Noselect"
        };
        let mut out = format!("* LSUB ({attrs}) \"/\" ").into_bytes();
        s.write_mailbox(&mut out, &name);
        out.extend_from_slice(b"\r\n");
        s.conn.push(&out);
    }
    Ok(Reply::ok("LSUB completed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "abc"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a*c", "a/b/c"));
        assert!(matches("a%c", "abc"));
        assert!(!matches("a%c", "a/c"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(matches("INBOX", "INBOX"));
        assert!(!matches("INBOX", "INBOX/x"));
        assert_eq!(canonical_pattern("inbox/%"), "INBOX/%");
        assert_eq!(canonical_pattern("inboxes"), "inboxes");
    }
}
