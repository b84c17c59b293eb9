//! The lexical layer of the command grammar (RFC 9051 section 9, RFC 3501 section 9):
//! a cursor over one command's octets, with literals already in line as
//! `{n}\r\n<n octets>` (the connection layer put them there, see [`crate::conn`]).
//!
//! Every function returns `Err` on input that does not fit; none panics, whatever the
//! octets (the fuzz target and the property test in `tests` hold it to that).

use super::ParseError;

pub type PResult<T> = Result<T, ParseError>;

pub struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    /// IMAP4rev2 / UTF8=ACCEPT: UTF-8 is allowed in quoted strings. Octets >= 0x80 are
    /// accepted in either mode (rev1 clients send Latin-1 passwords); the session decides.
    pub literal8_ok: bool,
}

/// RFC 9051 `atom-specials` minus what `ATOM-CHAR` excludes: `(){ %*"\]` and CTL.
pub fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR = ATOM-CHAR / resp-specials`.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// `list-char = ATOM-CHAR / list-wildcards / resp-specials`.
pub fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// `tag = 1*<any ASTRING-CHAR except "+">`.
pub fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            literal8_ok: false,
        }
    }

    pub fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError::new(msg))
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            self.err("unexpected characters at end of command")
        }
    }

    pub fn sp(&mut self) -> PResult<()> {
        if self.peek() == Some(b' ') {
            self.pos += 1;
            Ok(())
        } else {
            self.err("expected a space")
        }
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, c: u8) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(format!("expected '{}'", c as char))
        }
    }

    /// Consumes `word` (ASCII, case-insensitive) if it is next.
    pub fn eat_word(&mut self, word: &str) -> bool {
        let w = word.as_bytes();
        match self.buf.get(self.pos..self.pos + w.len()) {
            Some(s) if s.eq_ignore_ascii_case(w) => {
                self.pos += w.len();
                true
            }
            _ => false,
        }
    }

    /// Consumes `word` followed by a non-atom character (or the end).
    pub fn eat_keyword(&mut self, word: &str) -> bool {
        let save = self.pos;
        if self.eat_word(word) && !self.peek().is_some_and(is_atom_char) {
            true
        } else {
            self.pos = save;
            false
        }
    }

    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    pub fn atom(&mut self) -> PResult<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return self.err("expected an atom");
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    /// `number = 1*DIGIT` as an unsigned 32-bit value.
    pub fn number(&mut self) -> PResult<u32> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 10 {
            return self.err("expected a number");
        }
        let mut n: u64 = 0;
        for &b in d {
            n = n * 10 + u64::from(b - b'0');
        }
        u32::try_from(n).or_else(|_| self.err("number out of range"))
    }

    pub fn number64(&mut self) -> PResult<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return self.err("expected a number");
        }
        let mut n: u64 = 0;
        for &b in d {
            n = n * 10 + u64::from(b - b'0');
        }
        if n > i64::MAX as u64 {
            return self.err("number out of range");
        }
        Ok(n)
    }

    pub fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => self.err("zero is not a valid number here"),
            n => Ok(n),
        }
    }

    /// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`.
    pub fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') | Some(0) => {
                    return self.err("unterminated quoted string")
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return self.err("bad escape in quoted string"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A literal's octets: `{n}` / `{n+}` CRLF, then n octets. With `allow8`, also
    /// `~{n}` (RFC 3516 literal8). Returns (octets, was literal8).
    pub fn literal_any(&mut self, allow8: bool) -> PResult<(&'a [u8], bool)> {
        let eight = if self.peek() == Some(b'~') {
            if !allow8 {
                return self.err("literal8 not allowed here");
            }
            self.pos += 1;
            true
        } else {
            false
        };
        self.expect(b'{')?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.eat_word("\r\n") {
            return self.err("expected CRLF after literal size");
        }
        let n = usize::try_from(n).or_else(|_| self.err("literal too large"))?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return self.err("literal shorter than announced");
        };
        let data = &self.buf[self.pos..end];
        self.pos = end;
        Ok((data, eight))
    }

    pub fn literal(&mut self) -> PResult<Vec<u8>> {
        let (d, _) = self.literal_any(false)?;
        if d.contains(&0) {
            return self.err("NUL octet in a literal (RFC 9051 4.3)");
        }
        Ok(d.to_vec())
    }

    /// `string = quoted / literal`.
    pub fn string(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => self.err("expected a string"),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    pub fn astring(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    return self.err("expected an atom or string");
                }
                Ok(a.to_vec())
            }
        }
    }

    /// An astring that must be UTF-8 text.
    pub fn astring_utf8(&mut self) -> PResult<String> {
        String::from_utf8(self.astring()?).or_else(|_| self.err("string is not UTF-8"))
    }

    /// `nstring = string / NIL`.
    pub fn nstring(&mut self) -> PResult<Option<Vec<u8>>> {
        if self.eat_keyword("NIL") {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// `list-mailbox = 1*list-char / string`.
    pub fn list_mailbox(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return self.err("expected a mailbox pattern");
                }
                Ok(a.to_vec())
            }
        }
    }

    /// Parses `"(" item *(SP item) ")"`; with `allow_empty`, also `()`.
    pub fn paren_list<T>(
        &mut self,
        allow_empty: bool,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        if self.eat(b')') {
            if allow_empty {
                return Ok(out);
            }
            return self.err("empty list");
        }
        loop {
            out.push(item(self)?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }
}
