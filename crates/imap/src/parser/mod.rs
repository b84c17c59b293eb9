//! The IMAP command parser, written by hand from the ABNF of RFC 9051 section 9 (and
//! RFC 3501 section 9 for IMAP4rev1 forms), with LITERAL+ (RFC 7888), literal8 for
//! APPEND (RFC 3516), ENABLE (RFC 5161), ID (RFC 2971), MOVE (RFC 6851), UIDPLUS
//! (RFC 4315), LIST-EXTENDED selection and return options (RFC 5258, RFC 6154, RFC 5819)
//! and SEARCH RETURN (RFC 4731, part of IMAP4rev2), and the CONDSTORE/QRESYNC syntax
//! of RFC 7162 section 7: select parameters `(CONDSTORE)` and `(QRESYNC (...))`, fetch
//! modifiers `(CHANGEDSINCE n VANISHED)`, the store modifier `(UNCHANGEDSINCE n)` and
//! `MODSEQ ["/flags/..." priv|shared|all] n` in SEARCH. CHANGEDSINCE and the QRESYNC
//! modseq are `mod-sequence-value` (1 or more: 0 is BAD); UNCHANGEDSINCE and SEARCH
//! MODSEQ are `mod-sequence-valzer` (0 allowed); all at most 2^63-1. SORT (with ESORT's
//! RETURN) and THREAD (RFC 5256, RFC 5267) with DISPLAYFROM/DISPLAYTO (RFC 5957),
//! WITHIN's OLDER/YOUNGER (RFC 5032), OBJECTID's EMAILID/THREADID/MAILBOXID (RFC 8474)
//! and PREVIEW (RFC 8970).
//!
//! Input: one complete command, without its final CRLF, with each literal in line as
//! `{n}CRLF<n octets>` — the connection layer ([`crate::conn`]) reads the literals,
//! checks their size against `imap.max_literal_size` before asking for them, and hands
//! the whole command here. Output: a typed [`Command`], or a [`ParseError`] that carries
//! the tag when one could be read, so the session answers `tag BAD ...` (or `* BAD`).
//!
//! Mailbox names come out as raw octets ([`MailboxArg`]): the session decodes them as
//! modified UTF-7 or UTF-8 depending on what the client enabled.

mod lexer;
#[cfg(test)]
mod tests;

pub use lexer::{is_atom_char, Cursor, PResult};

use crate::datetime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command's tag when it could be read.
    pub tag: Option<String>,
    pub message: String,
}

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        ParseError {
            tag: None,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

/// A mailbox name as the client sent it (modified UTF-7 or UTF-8, decided later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxArg(pub Vec<u8>);

/// One end of a sequence range: a number, or `*` (the largest in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    Star,
}

/// `sequence-set`, or `$` (RFC 5182 SEARCHRES, part of IMAP4rev2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    Ranges(Vec<(SeqNum, SeqNum)>),
    Saved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    /// `\Seen`, `\Answered`... with their canonical spelling.
    System(letterbox_store::Flags),
    Keyword(String),
    /// Any other `\Something`: an extension flag (rejected by STORE).
    Extension(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Recent,
    Size,
    Deleted,
    HighestModSeq,
    /// RFC 8474.
    MailboxId,
    /// RFC 9208 4.2 (with `QUOTA=RES-STORAGE`).
    DeletedStorage,
    /// RFC 7889.
    AppendLimit,
}

/// `(QRESYNC (uidvalidity modseq [known-uids] [(seq-set uid-set)]))` (RFC 7162 3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    /// UIDs the client knows (no `*`).
    pub known_uids: Option<SequenceSet>,
    /// (message sequence numbers, their UIDs): a hint we do not need, since every
    /// expunge is kept with its MODSEQ; parsed and checked only.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// SELECT/EXAMINE parameters (RFC 4466 `select-params`, RFC 7162).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<Qresync>,
}

/// FETCH modifiers (RFC 7162 3.1.4.1, 3.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchModifiers {
    pub changed_since: Option<u64>,
    pub vanished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// Selection options (RFC 5258 3.1).
    pub subscribed: bool,
    pub special_use_only: bool,
    pub recursive_match: bool,
    /// Return options.
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
    /// The extended syntax was used (selection options or RETURN).
    pub extended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// `BODY` (the non-extensible BODYSTRUCTURE).
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
    /// RFC 8474.
    EmailId,
    ThreadId,
    /// RFC 8970 `PREVIEW` and `PREVIEW (LAZY)`.
    Preview {
        lazy: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Bcc(String),
    Before(i64),
    Body(String),
    Cc(String),
    Deleted,
    Draft,
    Flagged,
    From(String),
    Header(String, String),
    Keyword(String),
    Larger(u64),
    New,
    Not(Box<SearchKey>),
    Old,
    On(i64),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Since(i64),
    Smaller(u64),
    Subject(String),
    Text(String),
    To(String),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(String),
    Unseen,
    Seq(SequenceSet),
    ModSeq(u64),
    And(Vec<SearchKey>),
    /// RFC 5032 WITHIN: seconds.
    Older(u64),
    Younger(u64),
    /// RFC 8474.
    EmailId(String),
    ThreadId(String),
}

/// A SORT key (RFC 5256 section 3, RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// THREAD algorithms (RFC 5256 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    Capability,
    Noop,
    Logout,
    StartTls,
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    Login {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    Enable(Vec<String>),
    Id(Option<Vec<(String, Option<String>)>>),
    Namespace,
    Select {
        mailbox: MailboxArg,
        read_only: bool,
        params: SelectParams,
    },
    Create(MailboxArg),
    Delete(MailboxArg),
    Rename {
        from: MailboxArg,
        to: MailboxArg,
    },
    Subscribe(MailboxArg),
    Unsubscribe(MailboxArg),
    List {
        reference: MailboxArg,
        patterns: Vec<MailboxArg>,
        options: ListOptions,
    },
    Lsub {
        reference: MailboxArg,
        pattern: MailboxArg,
    },
    Status {
        mailbox: MailboxArg,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: MailboxArg,
        flags: Vec<Flag>,
        date: Option<i64>,
        message: Vec<u8>,
        /// Sent as a literal8 (`~{n}`, RFC 3516 4.4).
        binary: bool,
    },
    Idle,
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search {
        uid: bool,
        charset: Option<String>,
        returns: Option<Vec<SearchReturn>>,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchAtt>,
        modifiers: FetchModifiers,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        op: StoreOp,
        silent: bool,
        flags: Vec<Flag>,
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxArg,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxArg,
    },
    Sort {
        uid: bool,
        /// ESORT (RFC 5267): `SORT RETURN (...)`.
        returns: Option<Vec<SearchReturn>>,
        criteria: Vec<SortCriterion>,
        charset: String,
        key: SearchKey,
    },
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        key: SearchKey,
    },
    /// MULTIAPPEND (RFC 3502): an APPEND of more than one message (one message stays
    /// [`CommandBody::Append`]).
    MultiAppend {
        mailbox: MailboxArg,
        messages: Vec<AppendMessage>,
    },
    /// RFC 9208 4.2: the root as sent (an astring).
    GetQuota(Vec<u8>),
    GetQuotaRoot(MailboxArg),
    SetQuota {
        root: Vec<u8>,
        limits: Vec<(String, u64)>,
    },
    /// RFC 8437.
    Unauthenticate,
    /// CREATE with `USE (...)` (RFC 6154 section 3, create-param of RFC 4466): the
    /// attributes as sent, e.g. `\Sent`.
    CreateSpecialUse {
        mailbox: MailboxArg,
        uses: Vec<String>,
    },
    /// RFC 4978 `compress = "COMPRESS" SP algorithm`: the algorithm as sent, upper-cased
    /// (any atom: the command answers an unknown one BAD).
    Compress(String),
}

/// One message of an APPEND (RFC 3502 `append-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<Flag>,
    pub date: Option<i64>,
    pub message: Vec<u8>,
    /// Sent as a literal8 (`~{n}`, RFC 3516 4.4).
    pub binary: bool,
}

impl CommandBody {
    /// The command's name, for logs and responses.
    pub fn name(&self) -> &'static str {
        use CommandBody::*;
        match self {
            Capability => "CAPABILITY",
            Noop => "NOOP",
            Logout => "LOGOUT",
            StartTls => "STARTTLS",
            Authenticate { .. } => "AUTHENTICATE",
            Login { .. } => "LOGIN",
            Enable(_) => "ENABLE",
            Id(_) => "ID",
            Namespace => "NAMESPACE",
            Select {
                read_only: false, ..
            } => "SELECT",
            Select { .. } => "EXAMINE",
            Create(_) => "CREATE",
            Delete(_) => "DELETE",
            Rename { .. } => "RENAME",
            Subscribe(_) => "SUBSCRIBE",
            Unsubscribe(_) => "UNSUBSCRIBE",
            List { .. } => "LIST",
            Lsub { .. } => "LSUB",
            Status { .. } => "STATUS",
            Append { .. } => "APPEND",
            Idle => "IDLE",
            Check => "CHECK",
            Close => "CLOSE",
            Unselect => "UNSELECT",
            Expunge { .. } => "EXPUNGE",
            Search { .. } => "SEARCH",
            Fetch { .. } => "FETCH",
            Store { .. } => "STORE",
            Copy { .. } => "COPY",
            Move { .. } => "MOVE",
            Sort { .. } => "SORT",
            Thread { .. } => "THREAD",
            MultiAppend { .. } => "APPEND",
            GetQuota(_) => "GETQUOTA",
            GetQuotaRoot(_) => "GETQUOTAROOT",
            SetQuota { .. } => "SETQUOTA",
            Unauthenticate => "UNAUTHENTICATE",
            CreateSpecialUse { .. } => "CREATE",
            Compress(_) => "COMPRESS",
        }
    }
}

/// Parses one command (see the module docs for the input form).
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let mut c = Cursor::new(input);
    let tag = c.take_while(lexer::is_tag_char);
    if tag.is_empty() {
        return Err(ParseError::new("missing or malformed tag"));
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let with_tag = |mut e: ParseError| {
        e.tag = Some(tag.clone());
        e
    };
    c.sp().map_err(with_tag)?;
    let body = parse_body(&mut c).map_err(with_tag)?;
    c.end().map_err(with_tag)?;
    Ok(Command { tag, body })
}

fn mailbox(c: &mut Cursor) -> PResult<MailboxArg> {
    c.astring().map(MailboxArg)
}

fn parse_body(c: &mut Cursor) -> PResult<CommandBody> {
    let name = c.atom()?.to_ascii_uppercase();
    use CommandBody as B;
    Ok(match name.as_str() {
        "CAPABILITY" => B::Capability,
        "NOOP" => B::Noop,
        "LOGOUT" => B::Logout,
        "STARTTLS" => B::StartTls,
        "NAMESPACE" => B::Namespace,
        "IDLE" => B::Idle,
        "CHECK" => B::Check,
        "CLOSE" => B::Close,
        "UNSELECT" => B::Unselect,
        "EXPUNGE" => B::Expunge { uids: None },
        "AUTHENTICATE" => {
            c.sp()?;
            let mechanism = c.atom()?.to_ascii_uppercase();
            let initial = if c.eat(b' ') {
                // SASL-IR (RFC 4959): base64 or "=".
                let ir =
                    c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                if ir.is_empty() {
                    return c.err("expected an initial response");
                }
                Some(String::from_utf8_lossy(ir).into_owned())
            } else {
                None
            };
            B::Authenticate { mechanism, initial }
        }
        "LOGIN" => {
            c.sp()?;
            let user = c.astring()?;
            c.sp()?;
            let password = c.astring()?;
            B::Login { user, password }
        }
        "ENABLE" => {
            let mut caps = Vec::new();
            while c.eat(b' ') {
                caps.push(c.atom()?);
            }
            if caps.is_empty() {
                return c.err("ENABLE needs at least one capability");
            }
            B::Enable(caps)
        }
        "ID" => {
            c.sp()?;
            if c.eat_keyword("NIL") {
                B::Id(None)
            } else {
                let mut pairs = Vec::new();
                c.paren_list(true, |c| {
                    let k = c.string()?;
                    c.sp()?;
                    let v = c.nstring()?;
                    pairs.push((
                        String::from_utf8_lossy(&k).into_owned(),
                        v.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    ));
                    Ok(())
                })?;
                if pairs.len() > 30 {
                    return c.err("too many ID fields");
                }
                B::Id(Some(pairs))
            }
        }
        "SELECT" | "EXAMINE" => {
            c.sp()?;
            let mailbox = mailbox(c)?;
            let params = if c.eat(b' ') {
                select_params(c)?
            } else {
                SelectParams::default()
            };
            B::Select {
                mailbox,
                read_only: name == "EXAMINE",
                params,
            }
        }
        "CREATE" => {
            c.sp()?;
            let m = mailbox(c)?;
            // create-params (RFC 4466): only USE (RFC 6154 section 3) is known.
            if c.eat(b' ') {
                let mut uses = None;
                c.paren_list(false, |c| {
                    let name = c.atom()?.to_ascii_uppercase();
                    if name != "USE" || uses.is_some() {
                        return c.err(format!("unknown CREATE parameter {name}"));
                    }
                    c.sp()?;
                    uses = Some(c.paren_list(true, |c| {
                        c.expect(b'\\')?;
                        Ok(format!("\\{}", c.atom()?))
                    })?);
                    Ok(())
                })?;
                B::CreateSpecialUse {
                    mailbox: m,
                    uses: uses.unwrap_or_default(),
                }
            } else {
                B::Create(m)
            }
        }
        "DELETE" => {
            c.sp()?;
            B::Delete(mailbox(c)?)
        }
        "RENAME" => {
            c.sp()?;
            let from = mailbox(c)?;
            c.sp()?;
            let to = mailbox(c)?;
            B::Rename { from, to }
        }
        "SUBSCRIBE" => {
            c.sp()?;
            B::Subscribe(mailbox(c)?)
        }
        "UNSUBSCRIBE" => {
            c.sp()?;
            B::Unsubscribe(mailbox(c)?)
        }
        "LIST" => parse_list(c)?,
        "LSUB" => {
            c.sp()?;
            let reference = mailbox(c)?;
            c.sp()?;
            let pattern = MailboxArg(c.list_mailbox()?);
            B::Lsub { reference, pattern }
        }
        "STATUS" => {
            c.sp()?;
            let mailbox = mailbox(c)?;
            c.sp()?;
            let items = c.paren_list(false, status_item)?;
            B::Status { mailbox, items }
        }
        "APPEND" => parse_append(c)?,
        "SEARCH" => parse_search(c, false)?,
        "FETCH" => parse_fetch(c, false)?,
        "STORE" => parse_store(c, false)?,
        "COPY" | "MOVE" => parse_copy(c, false, name == "MOVE")?,
        "SORT" => parse_sort(c, false)?,
        "THREAD" => parse_thread(c, false)?,
        "UID" => {
            c.sp()?;
            let sub = c.atom()?.to_ascii_uppercase();
            match sub.as_str() {
                "SEARCH" => parse_search(c, true)?,
                "FETCH" => parse_fetch(c, true)?,
                "STORE" => parse_store(c, true)?,
                "COPY" => parse_copy(c, true, false)?,
                "MOVE" => parse_copy(c, true, true)?,
                "SORT" => parse_sort(c, true)?,
                "THREAD" => parse_thread(c, true)?,
                "EXPUNGE" => {
                    c.sp()?;
                    B::Expunge {
                        uids: Some(sequence_set(c)?),
                    }
                }
                _ => return c.err(format!("unknown UID command {sub}")),
            }
        }
        "UNAUTHENTICATE" => B::Unauthenticate,
        "GETQUOTA" => {
            c.sp()?;
            B::GetQuota(c.astring()?)
        }
        "GETQUOTAROOT" => {
            c.sp()?;
            B::GetQuotaRoot(mailbox(c)?)
        }
        "SETQUOTA" => {
            c.sp()?;
            let root = c.astring()?;
            c.sp()?;
            let limits = c.paren_list(true, |c| {
                let name = c.atom()?.to_ascii_uppercase();
                c.sp()?;
                Ok((name, c.number64()?))
            })?;
            B::SetQuota { root, limits }
        }
        "COMPRESS" => {
            c.sp()?;
            B::Compress(c.atom()?.to_ascii_uppercase())
        }
        _ => return c.err(format!("unknown command {name}")),
    })
}

pub fn status_item(c: &mut Cursor) -> PResult<StatusItem> {
    let a = c.atom()?.to_ascii_uppercase();
    Ok(match a.as_str() {
        "MESSAGES" => StatusItem::Messages,
        "UIDNEXT" => StatusItem::UidNext,
        "UIDVALIDITY" => StatusItem::UidValidity,
        "UNSEEN" => StatusItem::Unseen,
        "RECENT" => StatusItem::Recent,
        "SIZE" => StatusItem::Size,
        "DELETED" => StatusItem::Deleted,
        "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
        "MAILBOXID" => StatusItem::MailboxId,
        "DELETED-STORAGE" => StatusItem::DeletedStorage,
        "APPENDLIMIT" => StatusItem::AppendLimit,
        _ => return c.err(format!("unknown status item {a}")),
    })
}

fn parse_list(c: &mut Cursor) -> PResult<CommandBody> {
    let mut options = ListOptions::default();
    c.sp()?;
    if c.peek() == Some(b'(') {
        options.extended = true;
        let sel = c.paren_list(true, |c| c.atom())?;
        for s in sel {
            match s.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => options.subscribed = true,
                "REMOTE" => {}
                "RECURSIVEMATCH" => options.recursive_match = true,
                "SPECIAL-USE" => options.special_use_only = true,
                other => return c.err(format!("unknown LIST selection option {other}")),
            }
        }
        if options.recursive_match && !options.subscribed && !options.special_use_only {
            return c.err("RECURSIVEMATCH needs another selection option");
        }
        c.sp()?;
    }
    let reference = mailbox(c)?;
    c.sp()?;
    let patterns = if c.peek() == Some(b'(') {
        options.extended = true;
        c.paren_list(false, |c| c.list_mailbox().map(MailboxArg))?
    } else {
        vec![MailboxArg(c.list_mailbox()?)]
    };
    if c.eat(b' ') {
        if !c.eat_keyword("RETURN") {
            return c.err("expected RETURN");
        }
        options.extended = true;
        c.sp()?;
        c.expect(b'(')?;
        if !c.eat(b')') {
            loop {
                let a = c.atom()?.to_ascii_uppercase();
                match a.as_str() {
                    "SUBSCRIBED" => options.return_subscribed = true,
                    "CHILDREN" => options.return_children = true,
                    "SPECIAL-USE" => options.return_special_use = true,
                    "STATUS" => {
                        c.sp()?;
                        options.return_status = Some(c.paren_list(false, status_item)?);
                    }
                    other => return c.err(format!("unknown LIST return option {other}")),
                }
                if c.eat(b')') {
                    break;
                }
                c.sp()?;
            }
        }
    }
    Ok(CommandBody::List {
        reference,
        patterns,
        options,
    })
}

pub fn flag(c: &mut Cursor) -> PResult<Flag> {
    if c.eat(b'\\') {
        let a = c.atom()?;
        let full = format!("\\{a}");
        return Ok(match letterbox_store::Flags::parse(&full) {
            Some(f) => Flag::System(f),
            None => Flag::Extension(full),
        });
    }
    Ok(Flag::Keyword(c.atom()?))
}

fn flag_list(c: &mut Cursor) -> PResult<Vec<Flag>> {
    c.paren_list(true, flag)
}

/// Bound on the messages of one MULTIAPPEND (each is also a literal the connection
/// layer bounded).
const MAX_APPEND_MESSAGES: usize = 1000;

fn parse_append(c: &mut Cursor) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    let mut messages = Vec::new();
    // RFC 3502: `1*append-message`, each after a space.
    while c.eat(b' ') {
        if messages.len() >= MAX_APPEND_MESSAGES {
            return c.err("too many messages in one APPEND");
        }
        messages.push(append_message(c)?);
    }
    if messages.len() > 1 {
        return Ok(CommandBody::MultiAppend { mailbox, messages });
    }
    let Some(AppendMessage {
        flags,
        date,
        message,
        binary,
    }) = messages.pop()
    else {
        return c.err("expected a message");
    };
    Ok(CommandBody::Append {
        mailbox,
        flags,
        date,
        message,
        binary,
    })
}

fn append_message(c: &mut Cursor) -> PResult<AppendMessage> {
    let mut flags = Vec::new();
    if c.peek() == Some(b'(') {
        flags = flag_list(c)?;
        c.sp()?;
    }
    let mut date = None;
    if c.peek() == Some(b'"') {
        let q = c.quoted()?;
        date = Some(datetime::parse_date_time(&q).ok_or_else(|| ParseError::new("bad date-time"))?);
        c.sp()?;
    }
    // RFC 6855 `UTF8 (literal8)`.
    let utf8 = c.eat_keyword("UTF8");
    if utf8 {
        c.sp()?;
        c.expect(b'(')?;
    }
    let (data, binary) = c.literal_any(true)?;
    // RFC 9051 4.3 / RFC 3501 4.3: a literal is CHAR8, which excludes NUL; NUL is only
    // allowed in a literal8 (RFC 3516 4.4). Dovecot 2.3 stores such a message; refused
    // here, as in every other literal, so that nothing with a NUL is served back as text.
    if !binary && data.contains(&0) {
        return c.err("NUL octet in a literal; binary content needs a literal8 (~{n}, RFC 3516)");
    }
    if utf8 {
        c.expect(b')')?;
    }
    Ok(AppendMessage {
        flags,
        date,
        message: data.to_vec(),
        // RFC 6855's `UTF8 (~{n})` is 8-bit text, not binary content.
        binary: binary && !utf8,
    })
}

fn seq_number(c: &mut Cursor) -> PResult<SeqNum> {
    if c.eat(b'*') {
        Ok(SeqNum::Star)
    } else {
        c.nz_number().map(SeqNum::Value)
    }
}

/// `sequence-set` or `$`.
pub fn sequence_set(c: &mut Cursor) -> PResult<SequenceSet> {
    if c.eat(b'$') {
        return Ok(SequenceSet::Saved);
    }
    let mut ranges = Vec::new();
    loop {
        let a = seq_number(c)?;
        let b = if c.eat(b':') { seq_number(c)? } else { a };
        ranges.push((a, b));
        if ranges.len() > 100_000 {
            return c.err("sequence set too long");
        }
        if !c.eat(b',') {
            break;
        }
    }
    Ok(SequenceSet::Ranges(ranges))
}

/// `mod-sequence-value` (1..2^63-1), or `mod-sequence-valzer` with `zero`.
fn mod_sequence(c: &mut Cursor, zero: bool) -> PResult<u64> {
    let n = c.number64()?;
    if n == 0 && !zero {
        return c.err("mod-sequence must be at least 1");
    }
    Ok(n)
}

/// `select-params` after the mailbox's SP: `(CONDSTORE)`, `(QRESYNC (...))` or both.
fn select_params(c: &mut Cursor) -> PResult<SelectParams> {
    let mut p = SelectParams::default();
    c.expect(b'(')?;
    loop {
        let a = c.atom()?.to_ascii_uppercase();
        match a.as_str() {
            "CONDSTORE" if !p.condstore => p.condstore = true,
            "QRESYNC" if p.qresync.is_none() => {
                c.sp()?;
                c.expect(b'(')?;
                let uidvalidity = c.nz_number()?;
                c.sp()?;
                let modseq = mod_sequence(c, false)?;
                let mut q = Qresync {
                    uidvalidity,
                    modseq,
                    known_uids: None,
                    seq_match: None,
                };
                if c.eat(b' ') {
                    if c.peek() != Some(b'(') {
                        q.known_uids = Some(known_uids(c)?);
                        if c.eat(b' ') {
                            q.seq_match = Some(seq_match(c)?);
                        }
                    } else {
                        q.seq_match = Some(seq_match(c)?);
                    }
                }
                c.expect(b')')?;
                p.qresync = Some(q);
            }
            _ => return c.err(format!("unknown or repeated SELECT parameter {a}")),
        }
        if c.eat(b')') {
            return Ok(p);
        }
        c.sp()?;
    }
}

/// A UID set without `*` (RFC 7162 `known-uids`).
fn known_uids(c: &mut Cursor) -> PResult<SequenceSet> {
    let set = sequence_set(c)?;
    match &set {
        SequenceSet::Ranges(r)
            if r.iter()
                .all(|(a, b)| *a != SeqNum::Star && *b != SeqNum::Star) =>
        {
            Ok(set)
        }
        _ => c.err("known-uids may not contain * or $"),
    }
}

/// `seq-match-data = "(" known-sequence-set SP known-uid-set ")"`.
fn seq_match(c: &mut Cursor) -> PResult<(SequenceSet, SequenceSet)> {
    c.expect(b'(')?;
    let seqs = known_uids(c)?;
    c.sp()?;
    let uids = known_uids(c)?;
    c.expect(b')')?;
    Ok((seqs, uids))
}

fn parse_store(c: &mut Cursor, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = sequence_set(c)?;
    c.sp()?;
    // store-modifiers: UNCHANGEDSINCE (RFC 7162 3.1.3), the only one defined.
    let mut unchanged_since = None;
    if c.eat(b'(') {
        if !c.eat_keyword("UNCHANGEDSINCE") {
            return c.err("unknown STORE modifier");
        }
        c.sp()?;
        unchanged_since = Some(mod_sequence(c, true)?);
        c.expect(b')')?;
        c.sp()?;
    }
    let op = if c.eat(b'+') {
        StoreOp::Add
    } else if c.eat(b'-') {
        StoreOp::Remove
    } else {
        StoreOp::Replace
    };
    if !c.eat_word("FLAGS") {
        return c.err("expected FLAGS, +FLAGS or -FLAGS");
    }
    let silent = c.eat_word(".SILENT");
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        flag_list(c)?
    } else {
        let mut v = vec![flag(c)?];
        while c.eat(b' ') {
            v.push(flag(c)?);
        }
        v
    };
    Ok(CommandBody::Store {
        uid,
        set,
        op,
        silent,
        flags,
        unchanged_since,
    })
}

fn parse_copy(c: &mut Cursor, uid: bool, is_move: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = sequence_set(c)?;
    c.sp()?;
    let mailbox = mailbox(c)?;
    Ok(if is_move {
        CommandBody::Move { uid, set, mailbox }
    } else {
        CommandBody::Copy { uid, set, mailbox }
    })
}

// --- FETCH ---

fn parse_fetch(c: &mut Cursor, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = sequence_set(c)?;
    c.sp()?;
    let items = if c.peek() == Some(b'(') {
        c.paren_list(false, fetch_att)?
    } else if c.eat_keyword("ALL") {
        vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Rfc822Size,
            FetchAtt::Envelope,
        ]
    } else if c.eat_keyword("FAST") {
        vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Rfc822Size,
        ]
    } else if c.eat_keyword("FULL") {
        vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Rfc822Size,
            FetchAtt::Envelope,
            FetchAtt::Body,
        ]
    } else {
        vec![fetch_att(c)?]
    };
    // fetch-modifiers (RFC 7162 3.1.4.1, 3.2.6): each at most once; VANISHED only in
    // UID FETCH and with CHANGEDSINCE.
    let mut modifiers = FetchModifiers::default();
    if c.eat(b' ') {
        c.expect(b'(')?;
        loop {
            let a = c.atom()?.to_ascii_uppercase();
            match a.as_str() {
                "CHANGEDSINCE" if modifiers.changed_since.is_none() => {
                    c.sp()?;
                    modifiers.changed_since = Some(mod_sequence(c, false)?);
                }
                "VANISHED" if uid && !modifiers.vanished => modifiers.vanished = true,
                _ => return c.err(format!("unknown or repeated FETCH modifier {a}")),
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
        if modifiers.vanished && modifiers.changed_since.is_none() {
            return c.err("VANISHED needs CHANGEDSINCE");
        }
    }
    Ok(CommandBody::Fetch {
        uid,
        set,
        items,
        modifiers,
    })
}

fn partial(c: &mut Cursor) -> PResult<Option<(u32, u32)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let start = c.number()?;
    c.expect(b'.')?;
    let len = c.nz_number()?;
    c.expect(b'>')?;
    Ok(Some((start, len)))
}

fn section_part(c: &mut Cursor) -> PResult<Vec<u32>> {
    let mut part = Vec::new();
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        part.push(c.nz_number()?);
        if part.len() > 100 {
            return c.err("section too deep");
        }
        let save = c.pos;
        if c.eat(b'.') && c.peek().is_some_and(|b| b.is_ascii_digit()) {
            continue;
        }
        c.pos = save;
        break;
    }
    Ok(part)
}

fn header_field_names(c: &mut Cursor) -> PResult<Vec<String>> {
    c.paren_list(false, |c| {
        let f = c.astring()?;
        if f.is_empty() || f.iter().any(|&b| b <= b' ' || b >= 0x7f || b == b':') {
            return c.err("bad header field name");
        }
        Ok(String::from_utf8_lossy(&f).into_owned())
    })
}

fn section(c: &mut Cursor) -> PResult<Section> {
    c.expect(b'[')?;
    let part = section_part(c)?;
    let mut text = None;
    let has_part = !part.is_empty();
    if !has_part || c.eat(b'.') {
        if c.eat_word("HEADER.FIELDS.NOT") {
            c.sp()?;
            text = Some(SectionText::HeaderFields {
                not: true,
                fields: header_field_names(c)?,
            });
        } else if c.eat_word("HEADER.FIELDS") {
            c.sp()?;
            text = Some(SectionText::HeaderFields {
                not: false,
                fields: header_field_names(c)?,
            });
        } else if c.eat_word("HEADER") {
            text = Some(SectionText::Header);
        } else if c.eat_word("TEXT") {
            text = Some(SectionText::Text);
        } else if has_part && c.eat_word("MIME") {
            text = Some(SectionText::Mime);
        } else if has_part {
            return c.err("bad section text");
        }
    }
    c.expect(b']')?;
    Ok(Section { part, text })
}

fn binary_part(c: &mut Cursor) -> PResult<Vec<u32>> {
    c.expect(b'[')?;
    let p = section_part(c)?;
    c.expect(b']')?;
    Ok(p)
}

fn fetch_att(c: &mut Cursor) -> PResult<FetchAtt> {
    // Longest names first: BODY.PEEK before BODY, RFC822.SIZE before RFC822.
    if c.eat_word("BODY.PEEK") {
        let section = section(c)?;
        return Ok(FetchAtt::BodySection {
            peek: true,
            section,
            partial: partial(c)?,
        });
    }
    if c.eat_keyword("BODYSTRUCTURE") {
        return Ok(FetchAtt::BodyStructure);
    }
    if c.eat_word("BODY") {
        if c.peek() == Some(b'[') {
            let section = section(c)?;
            return Ok(FetchAtt::BodySection {
                peek: false,
                section,
                partial: partial(c)?,
            });
        }
        if c.peek().is_some_and(is_atom_char) {
            return c.err("unknown fetch attribute");
        }
        return Ok(FetchAtt::Body);
    }
    if c.eat_word("BINARY.PEEK") {
        let part = binary_part(c)?;
        return Ok(FetchAtt::Binary {
            peek: true,
            part,
            partial: partial(c)?,
        });
    }
    if c.eat_word("BINARY.SIZE") {
        return Ok(FetchAtt::BinarySize {
            part: binary_part(c)?,
        });
    }
    if c.eat_word("BINARY") {
        let part = binary_part(c)?;
        return Ok(FetchAtt::Binary {
            peek: false,
            part,
            partial: partial(c)?,
        });
    }
    let a = c.atom()?.to_ascii_uppercase();
    Ok(match a.as_str() {
        "ENVELOPE" => FetchAtt::Envelope,
        "FLAGS" => FetchAtt::Flags,
        "INTERNALDATE" => FetchAtt::InternalDate,
        "RFC822.SIZE" => FetchAtt::Rfc822Size,
        "RFC822.HEADER" => FetchAtt::Rfc822Header,
        "RFC822.TEXT" => FetchAtt::Rfc822Text,
        "RFC822" => FetchAtt::Rfc822,
        "UID" => FetchAtt::Uid,
        "MODSEQ" => FetchAtt::ModSeq,
        "EMAILID" => FetchAtt::EmailId,
        "THREADID" => FetchAtt::ThreadId,
        "PREVIEW" => {
            // RFC 8970: `PREVIEW (LAZY)`; no other modifier is defined. A list that does
            // not start with LAZY is not ours: FETCH's modifiers (`(CHANGEDSINCE n)`).
            let save = c.pos;
            let lazy_next = c
                .rest()
                .get(..6)
                .is_some_and(|r| r.eq_ignore_ascii_case(b" (LAZY"))
                && matches!(c.rest().get(6), Some(b' ' | b')'));
            if lazy_next && c.eat(b' ') {
                let mods = c.paren_list(false, |c| c.atom())?;
                if let Some(m) = mods.iter().find(|m| !m.eq_ignore_ascii_case("LAZY")) {
                    return c.err(format!("unknown PREVIEW modifier {m}"));
                }
                FetchAtt::Preview { lazy: true }
            } else {
                c.pos = save;
                FetchAtt::Preview { lazy: false }
            }
        }
        _ => return c.err(format!("unknown fetch attribute {a}")),
    })
}

// --- SEARCH ---

/// Nesting bound for parenthesised keys and NOT/OR chains (a hostile command cannot
/// recurse the parser off its stack).
const MAX_SEARCH_DEPTH: usize = 64;

fn parse_search(c: &mut Cursor, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mut returns = None;
    if c.eat_keyword("RETURN") {
        c.sp()?;
        returns = Some(c.paren_list(true, search_return)?);
        c.sp()?;
    }
    let mut charset = None;
    if c.eat_keyword("CHARSET") {
        c.sp()?;
        charset = Some(String::from_utf8_lossy(&c.astring()?).into_owned());
        c.sp()?;
    }
    let mut keys = vec![search_key(c, 0)?];
    while c.eat(b' ') {
        keys.push(search_key(c, 0)?);
    }
    let key = if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    };
    Ok(CommandBody::Search {
        uid,
        charset,
        returns,
        key,
    })
}

/// A SEARCH (and ESORT, RFC 5267) return option.
fn search_return(c: &mut Cursor) -> PResult<SearchReturn> {
    let a = c.atom()?.to_ascii_uppercase();
    Ok(match a.as_str() {
        "MIN" => SearchReturn::Min,
        "MAX" => SearchReturn::Max,
        "ALL" => SearchReturn::All,
        "COUNT" => SearchReturn::Count,
        "SAVE" => SearchReturn::Save,
        _ => return c.err(format!("unknown SEARCH return option {a}")),
    })
}

fn search_string(c: &mut Cursor) -> PResult<String> {
    // Text is matched as UTF-8; invalid octets are replaced (they cannot match anyway).
    Ok(String::from_utf8_lossy(&c.astring()?).into_owned())
}

fn search_date(c: &mut Cursor) -> PResult<i64> {
    let raw = if c.peek() == Some(b'"') {
        c.quoted()?
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-')
            .to_vec()
    };
    datetime::parse_date(&raw).ok_or_else(|| ParseError::new("bad date"))
}

fn search_key(c: &mut Cursor, depth: usize) -> PResult<SearchKey> {
    if depth > MAX_SEARCH_DEPTH {
        return c.err("search nested too deeply");
    }
    use SearchKey as K;
    if c.peek() == Some(b'(') {
        let keys = c.paren_list(false, |c| search_key(c, depth + 1))?;
        return Ok(if keys.len() == 1 {
            keys.into_iter().next().unwrap_or(K::All)
        } else {
            K::And(keys)
        });
    }
    if c.peek()
        .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
    {
        return Ok(K::Seq(sequence_set(c)?));
    }
    let a = c.atom()?.to_ascii_uppercase();
    macro_rules! arg {
        ($f:expr) => {{
            c.sp()?;
            $f(c)?
        }};
    }
    Ok(match a.as_str() {
        "ALL" => K::All,
        "ANSWERED" => K::Answered,
        "BCC" => K::Bcc(arg!(search_string)),
        "BEFORE" => K::Before(arg!(search_date)),
        "BODY" => K::Body(arg!(search_string)),
        "CC" => K::Cc(arg!(search_string)),
        "DELETED" => K::Deleted,
        "DRAFT" => K::Draft,
        "FLAGGED" => K::Flagged,
        "FROM" => K::From(arg!(search_string)),
        "HEADER" => {
            let f = arg!(search_string);
            let v = arg!(search_string);
            K::Header(f, v)
        }
        "KEYWORD" => K::Keyword(arg!(|c: &mut Cursor| c.atom())),
        "LARGER" => K::Larger(arg!(|c: &mut Cursor| c.number64())),
        "NEW" => K::New,
        "NOT" => {
            c.sp()?;
            K::Not(Box::new(search_key(c, depth + 1)?))
        }
        "OLD" => K::Old,
        "ON" => K::On(arg!(search_date)),
        "OR" => {
            c.sp()?;
            let a = search_key(c, depth + 1)?;
            c.sp()?;
            let b = search_key(c, depth + 1)?;
            K::Or(Box::new(a), Box::new(b))
        }
        "RECENT" => K::Recent,
        "SEEN" => K::Seen,
        "SENTBEFORE" => K::SentBefore(arg!(search_date)),
        "SENTON" => K::SentOn(arg!(search_date)),
        "SENTSINCE" => K::SentSince(arg!(search_date)),
        "SINCE" => K::Since(arg!(search_date)),
        "SMALLER" => K::Smaller(arg!(|c: &mut Cursor| c.number64())),
        "SUBJECT" => K::Subject(arg!(search_string)),
        "TEXT" => K::Text(arg!(search_string)),
        "TO" => K::To(arg!(search_string)),
        "UID" => K::Uid(arg!(sequence_set)),
        "UNANSWERED" => K::Unanswered,
        "UNDELETED" => K::Undeleted,
        "UNDRAFT" => K::Undraft,
        "UNFLAGGED" => K::Unflagged,
        "UNKEYWORD" => K::Unkeyword(arg!(|c: &mut Cursor| c.atom())),
        "UNSEEN" => K::Unseen,
        "MODSEQ" => {
            c.sp()?;
            // search-modseq-ext: `"/flags/<flag>" priv|shared|all`. We keep one MODSEQ
            // per message, which RFC 7162 3.1.5 allows for every entry.
            if c.peek() == Some(b'"') {
                let entry = c.quoted()?;
                if !entry
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"/flags/"))
                    || entry.len() == 7
                {
                    return c.err("bad MODSEQ entry name");
                }
                c.sp()?;
                let t = c.atom()?.to_ascii_lowercase();
                if !matches!(t.as_str(), "priv" | "shared" | "all") {
                    return c.err("bad MODSEQ entry type");
                }
                c.sp()?;
            }
            K::ModSeq(mod_sequence(c, true)?)
        }
        "OLDER" => K::Older(arg!(|c: &mut Cursor| c.nz_number().map(u64::from))),
        "YOUNGER" => K::Younger(arg!(|c: &mut Cursor| c.nz_number().map(u64::from))),
        "EMAILID" => K::EmailId(arg!(objectid)),
        "THREADID" => K::ThreadId(arg!(objectid)),
        _ => return c.err(format!("unknown search key {a}")),
    })
}

/// RFC 8474 `objectid = 1*255(ALPHA / DIGIT / "_" / "-")`.
fn objectid(c: &mut Cursor) -> PResult<String> {
    let id = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if id.is_empty() || id.len() > 255 {
        return c.err("bad object id");
    }
    Ok(String::from_utf8_lossy(id).into_owned())
}

/// `charset 1*(SP search-key)` of SORT and THREAD (RFC 5256 section 5): the charset is
/// required there.
fn charset_and_keys(c: &mut Cursor) -> PResult<(String, SearchKey)> {
    let charset = String::from_utf8_lossy(&c.astring()?).into_owned();
    let mut keys = Vec::new();
    while c.eat(b' ') {
        keys.push(search_key(c, 0)?);
    }
    let key = match keys.len() {
        0 => return c.err("missing search criteria"),
        1 => keys.pop().unwrap_or(SearchKey::All),
        _ => SearchKey::And(keys),
    };
    Ok((charset, key))
}

/// `SORT SP [RETURN SP (options) SP] sort-criteria SP search-criteria` (RFC 5256
/// section 5, RFC 5957, RFC 5267 ESORT).
fn parse_sort(c: &mut Cursor, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mut returns = None;
    if c.eat_keyword("RETURN") {
        c.sp()?;
        returns = Some(c.paren_list(true, search_return)?);
        c.sp()?;
    }
    let criteria = c.paren_list(false, |c| {
        let mut a = c.atom()?.to_ascii_uppercase();
        let reverse = a == "REVERSE";
        if reverse {
            c.sp()?;
            a = c.atom()?.to_ascii_uppercase();
        }
        let key = match a.as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => return c.err(format!("unknown sort criterion {a}")),
        };
        Ok(SortCriterion { reverse, key })
    })?;
    if criteria.len() > 16 {
        return c.err("too many sort criteria");
    }
    c.sp()?;
    let (charset, key) = charset_and_keys(c)?;
    Ok(CommandBody::Sort {
        uid,
        returns,
        criteria,
        charset,
        key,
    })
}

/// `THREAD SP thread-alg SP search-criteria` (RFC 5256 section 5).
fn parse_thread(c: &mut Cursor, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let a = c.atom()?.to_ascii_uppercase();
    let algorithm = match a.as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        _ => return c.err(format!("unknown threading algorithm {a}")),
    };
    c.sp()?;
    let (charset, key) = charset_and_keys(c)?;
    Ok(CommandBody::Thread {
        uid,
        algorithm,
        charset,
        key,
    })
}
