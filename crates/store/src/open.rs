//! What SELECT and EXAMINE read of a mailbox (RFC 9051 6.3.2, 6.3.3; `\Recent`: RFC 3501
//! 2.3.2), written once for both backends (issue 18).
//!
//! Opening a mailbox used to take four reads: the mailbox by name, its `\Recent` mark,
//! the mailbox again after the claim and the account (for the quota ALERT). Each is a
//! round trip to PostgreSQL, and the PostgreSQL claim wrote the mailbox row at every
//! SELECT. Now the backend reads the mailbox row, its `first_recent` mark and its account
//! in one statement ([`Backend::mailbox_to_open`]); only when there is something to
//! claim ([`Backend::claim_recent`] with `take`) does a write follow, and then the row is
//! read again so that its HIGHESTMODSEQ covers the claimed UIDs. A warm SELECT (nothing
//! new since the last one) is one read.

use crate::{AccountId, Backend, Error, Opened, Result};

/// Opens `name` of `account`: `claim` is `None` (nothing about `\Recent`: recent is
/// `(0, 0)`), `Some(false)` (EXAMINE: the unclaimed UIDs `[first_recent, u32::MAX)`,
/// nothing written) or `Some(true)` (the unclaimed UIDs become the caller's, as
/// [`Backend::claim_recent`]). A claim that cannot be written (a full disk) is logged
/// and the mailbox opened without it.
pub fn open_mailbox(
    st: &dyn Backend,
    account: AccountId,
    name: &str,
    claim: Option<bool>,
) -> Result<Opened> {
    let (mailbox, first_recent, acct) = st.mailbox_to_open(account, name)?;
    let recent = match claim {
        None => (0, 0),
        Some(false) => (first_recent, u32::MAX),
        // Nothing arrived since the last claim: nothing to write.
        Some(true) if first_recent >= mailbox.uidnext => (0, 0),
        Some(true) => match st.claim_recent(mailbox.id, true) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("store: \\Recent not claimed: {e}");
                (0, 0)
            }
        },
    };
    // After a claim the mailbox is read again: the claimed UIDs are below its uidnext
    // and covered by its HIGHESTMODSEQ, so the caller's snapshot holds them.
    let mailbox = if recent.1 > recent.0 && claim == Some(true) {
        st.mailbox_by_id(mailbox.id)?
    } else {
        mailbox
    };
    Ok(Opened {
        mailbox,
        recent,
        account: acct,
    })
}

/// What `serve` runs once before it accepts the first client (issue 18: the first SELECT
/// after a start): the reads a LOGIN and a SELECT make (the blocked addresses, a mailbox
/// to open with its account and `\Recent` mark, a stored index), for an account that
/// cannot exist, so that their statements are parsed and their code paged in before a
/// client waits for them; then [`Backend::start_log`]. Nothing is changed for any user.
pub fn warm_up(st: &dyn Backend) -> Result<()> {
    // No account has a negative id; "not found" is the expected answer.
    const NOBODY: AccountId = -1;
    st.blocks(crate::now())?;
    match st.mailbox_to_open(NOBODY, "INBOX") {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    st.read_mailbox_index(NOBODY, &mut |_, _, _| {})?;
    st.start_log()
}
