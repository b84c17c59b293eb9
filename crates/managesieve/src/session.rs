//! One ManageSieve session: not authenticated (CAPABILITY, STARTTLS, AUTHENTICATE,
//! NOOP, LOGOUT) -> authenticated (the script commands, UNAUTHENTICATE). See the crate
//! documentation for the replies.

use crate::parser::{read_command, string, Arg, Read};
use letterbox_filter::Filter;
use letterbox_proto::auth::Login;
use letterbox_proto::sasl::{self, SaslError};
use letterbox_proto::{BoxStream, Context, Peer};
use letterbox_store::{Account, Error as StoreError};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};

pub async fn run(ctx: Context, stream: BoxStream, peer: Peer) {
    let filter = Filter::shared(&ctx.config);
    let mut s = Session {
        io: BufReader::new(stream),
        ctx,
        peer,
        filter,
        account: None,
        failures: 0,
    };
    if let Err(e) = s.serve().await {
        tracing::debug!(peer = %s.peer.addr, "managesieve: session ended: {e}");
    }
}

struct Session {
    ctx: Context,
    peer: Peer,
    io: BufReader<BoxStream>,
    filter: Arc<Filter>,
    account: Option<Account>,
    failures: u32,
}

enum Flow {
    Continue,
    Close,
}

fn ok(text: &str) -> Vec<u8> {
    let mut v = b"OK ".to_vec();
    v.extend_from_slice(&string(text.as_bytes()));
    v.extend_from_slice(b"\r\n");
    v
}

fn no(code: Option<&str>, text: &str) -> Vec<u8> {
    let mut v = b"NO ".to_vec();
    if let Some(c) = code {
        v.extend_from_slice(format!("({c}) ").as_bytes());
    }
    v.extend_from_slice(&string(text.as_bytes()));
    v.extend_from_slice(b"\r\n");
    v
}

impl Session {
    fn timeout(&self) -> Duration {
        let l = &self.ctx.config.limits;
        Duration::from_secs(if self.account.is_some() {
            l.timeout_authenticated
        } else {
            l.timeout_unauthenticated
        }
        .max(1))
    }

    fn max_script(&self) -> u64 {
        self.ctx.config.filter.sieve_max_script_size.0
    }

    fn sasl_allowed(&self) -> bool {
        self.peer.plaintext_auth_allowed(&self.ctx.config)
    }

    fn capabilities(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"\"IMPLEMENTATION\" \"Letterbox\"\r\n");
        if self.account.is_none() {
            let mechs = if self.sasl_allowed() { "PLAIN LOGIN" } else { "" };
            v.extend_from_slice(format!("\"SASL\" \"{mechs}\"\r\n").as_bytes());
        }
        v.extend_from_slice(b"\"SIEVE\" ");
        v.extend_from_slice(&string(letterbox_filter::sieve::capability_string().as_bytes()));
        v.extend_from_slice(b"\r\n");
        if !self.peer.tls && self.ctx.tls.is_some() && self.account.is_none() {
            v.extend_from_slice(b"\"STARTTLS\"\r\n");
        }
        v.extend_from_slice(
            format!(
                "\"MAXREDIRECTS\" \"{}\"\r\n\"VERSION\" \"1.0\"\r\n",
                self.ctx.config.filter.sieve_max_out_messages
            )
            .as_bytes(),
        );
        v
    }

    async fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.io.get_mut().write_all(b).await?;
        self.io.get_mut().flush().await
    }

    async fn serve(&mut self) -> io::Result<()> {
        let mut greeting = self.capabilities();
        greeting.extend_from_slice(&ok("Letterbox ManageSieve ready"));
        self.send(&greeting).await?;
        loop {
            let max_line = self.ctx.config.limits.max_line_length;
            let max_lit = self.max_script().max(8192);
            let read = match tokio::time::timeout(
                self.timeout(),
                read_command(&mut self.io, max_line, max_lit),
            )
            .await
            {
                Ok(r) => r?,
                Err(_) => {
                    self.send(b"BYE \"Idle timeout\"\r\n").await?;
                    return Ok(());
                }
            };
            let flow = match read {
                Read::Eof => return Ok(()),
                Read::Bad(why) => {
                    self.send(&no(None, &format!("Syntax error: {why}"))).await?;
                    Flow::Continue
                }
                Read::TooBig => {
                    let r = no(Some("QUOTA/MAXSIZE"), "Script too large");
                    self.send(&r).await?;
                    Flow::Continue
                }
                Read::Command(name, args) => self.command(&name, args).await?,
            };
            if let Flow::Close = flow {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, name: &str, args: Vec<Arg>) -> io::Result<Flow> {
        let reply = match (name, self.account.is_some()) {
            ("CAPABILITY", _) => {
                let mut v = self.capabilities();
                v.extend_from_slice(&ok("Capability completed"));
                v
            }
            ("NOOP", _) => match args.first().and_then(Arg::text) {
                Some(tag) => {
                    let mut v = b"OK (TAG ".to_vec();
                    v.extend_from_slice(&string(tag.as_bytes()));
                    v.extend_from_slice(b") \"Done\"\r\n");
                    v
                }
                None => ok("Done"),
            },
            ("LOGOUT", _) => {
                self.send(&ok("Logout completed")).await?;
                return Ok(Flow::Close);
            }
            ("STARTTLS", false) => return self.starttls().await,
            ("AUTHENTICATE", false) => return self.authenticate(args).await,
            ("UNAUTHENTICATE", true) => {
                self.account = None;
                ok("Unauthenticate completed")
            }
            ("STARTTLS" | "AUTHENTICATE", true) => no(None, "Already authenticated"),
            (
                "PUTSCRIPT" | "CHECKSCRIPT" | "HAVESPACE" | "LISTSCRIPTS" | "SETACTIVE"
                | "GETSCRIPT" | "DELETESCRIPT" | "RENAMESCRIPT",
                false,
            ) => no(None, "Authenticate first"),
            (_, true) => self.script_command(name, args).await,
            _ => no(None, "Unknown command"),
        };
        self.send(&reply).await?;
        Ok(Flow::Continue)
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.peer.tls {
            self.send(&no(None, "TLS is already active")).await?;
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.clone() else {
            self.send(&no(None, "TLS is not available")).await?;
            return Ok(Flow::Continue);
        };
        self.send(&ok("Begin TLS negotiation now")).await?;
        // Whatever was pipelined after STARTTLS stays behind with the plaintext reader.
        let placeholder: BoxStream = Box::new(tokio::io::empty());
        let plain = std::mem::replace(&mut self.io, BufReader::new(placeholder)).into_inner();
        match tls.accept(plain).await {
            Ok(stream) => {
                self.io = BufReader::new(stream);
                self.peer.tls = true;
                // RFC 5804 2.2: the capabilities again, then OK.
                let mut v = self.capabilities();
                v.extend_from_slice(&ok("TLS negotiation successful"));
                self.send(&v).await?;
                Ok(Flow::Continue)
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer.addr, "managesieve: STARTTLS handshake failed: {e}");
                Ok(Flow::Close)
            }
        }
    }

    async fn authenticate(&mut self, args: Vec<Arg>) -> io::Result<Flow> {
        if !self.sasl_allowed() {
            self.send(&no(Some("ENCRYPT-NEEDED"), "Use STARTTLS first")).await?;
            return Ok(Flow::Continue);
        }
        let mech = args.first().and_then(Arg::text).unwrap_or_default().to_ascii_uppercase();
        let initial = args.get(1).and_then(Arg::text);
        let creds = match mech.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(r) => Some(r),
                    None => {
                        self.send(b"\"\"\r\n").await?;
                        self.string_response().await?
                    }
                };
                match resp.map(|r| sasl::plain(&r)) {
                    Some(Ok(c)) => Ok((c.user, c.password)),
                    Some(Err(SaslError::AuthzidMismatch)) => Err("Authorization identity not supported"),
                    None | Some(Err(SaslError::Cancelled)) => Err("Authentication cancelled"),
                    Some(Err(_)) => Err("Malformed response"),
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => Some(r),
                    None => {
                        let c = format!("{}\r\n", String::from_utf8_lossy(&string(sasl::encode_base64(b"Username:").as_bytes())));
                        self.send(c.as_bytes()).await?;
                        self.string_response().await?
                    }
                };
                let user = user.map(|u| sasl::login_step(&u));
                match user {
                    Some(Ok(user)) => {
                        let c = format!("{}\r\n", String::from_utf8_lossy(&string(sasl::encode_base64(b"Password:").as_bytes())));
                        self.send(c.as_bytes()).await?;
                        match self.string_response().await?.map(|p| sasl::login_step(&p)) {
                            Some(Ok(p)) => Ok((user, p)),
                            None | Some(Err(SaslError::Cancelled)) => Err("Authentication cancelled"),
                            Some(Err(_)) => Err("Malformed response"),
                        }
                    }
                    None | Some(Err(SaslError::Cancelled)) => Err("Authentication cancelled"),
                    Some(Err(_)) => Err("Malformed response"),
                }
            }
            _ => {
                self.send(&no(None, "Unsupported SASL mechanism")).await?;
                return Ok(Flow::Continue);
            }
        };
        let (user, password) = match creds {
            Ok(c) => c,
            Err(why) => {
                self.send(&no(None, why)).await?;
                return Ok(Flow::Continue);
            }
        };
        match self.ctx.login(&self.peer, &user, &password).await {
            Login::Ok(account) => {
                tracing::info!(peer = %self.peer.addr, user = %account.address, "managesieve: logged in");
                self.account = Some(account);
                self.send(&ok("Logged in")).await?;
                Ok(Flow::Continue)
            }
            Login::Unavailable(e) => {
                tracing::error!("managesieve: login unavailable: {e}");
                self.send(&no(Some("TRYLATER"), "Try again later")).await?;
                Ok(Flow::Continue)
            }
            Login::Failed | Login::Blocked => {
                self.failures += 1;
                if self.failures >= self.ctx.config.limits.max_auth_failures.max(1) {
                    self.send(b"BYE \"Too many authentication failures\"\r\n").await?;
                    return Ok(Flow::Close);
                }
                self.send(&no(None, "Authentication failed")).await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// A SASL response: a quoted string or literal on its own line; `None` for `"*"`
    /// (cancel) or anything malformed.
    async fn string_response(&mut self) -> io::Result<Option<String>> {
        let max_line = self.ctx.config.limits.max_line_length;
        let mut line = Vec::new();
        let r = tokio::time::timeout(
            self.timeout(),
            letterbox_proto::read_line(&mut self.io, &mut line, max_line),
        )
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if r != letterbox_proto::Line::Ok {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let s = String::from_utf8_lossy(&line).trim().to_string();
        if let Some(q) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            if q == "*" {
                return Ok(None);
            }
            return Ok(Some(q.replace("\\\"", "\"").replace("\\\\", "\\")));
        }
        if s.starts_with('{') && s.ends_with('}') {
            let n: usize = s
                .trim_start_matches('{')
                .trim_end_matches('}')
                .trim_end_matches('+')
                .parse()
                .unwrap_or(usize::MAX);
            if n > 8192 {
                return Ok(None);
            }
            let mut data = vec![0u8; n];
            tokio::io::AsyncReadExt::read_exact(&mut self.io, &mut data).await?;
            let mut rest = Vec::new();
            letterbox_proto::read_line(&mut self.io, &mut rest, max_line).await?;
            return Ok(String::from_utf8(data).ok());
        }
        Ok(None)
    }

    async fn script_command(&mut self, name: &str, args: Vec<Arg>) -> Vec<u8> {
        let Some(account) = self.account.clone() else {
            return no(None, "Authenticate first");
        };
        let text = |i: usize| args.get(i).and_then(Arg::text);
        let store = self.ctx.store.clone();
        let max_scripts = self.ctx.config.filter.sieve_max_scripts;
        let id = account.id;
        match name {
            "CHECKSCRIPT" | "PUTSCRIPT" => {
                let (sname, script) = if name == "PUTSCRIPT" {
                    match (text(0), args.get(1)) {
                        (Some(n), Some(Arg::String(s))) => (Some(n), s.clone()),
                        _ => return no(None, "Usage: PUTSCRIPT name script"),
                    }
                } else {
                    match args.first() {
                        Some(Arg::String(s)) => (None, s.clone()),
                        _ => return no(None, "Usage: CHECKSCRIPT script"),
                    }
                };
                if script.len() as u64 > self.max_script() {
                    return no(Some("QUOTA/MAXSIZE"), "Script too large");
                }
                if let Err(e) = self.filter.sieve().check(&script) {
                    return no(None, &e.to_string());
                }
                let Some(sname) = sname else {
                    return ok("Script is valid");
                };
                match store
                    .run(move |s| s.sieve_put(id, &sname, script, Some(max_scripts)))
                    .await
                {
                    Ok(()) => ok("Script stored"),
                    Err(StoreError::Refused(_)) => no(Some("QUOTA/MAXSCRIPTS"), "Too many scripts"),
                    Err(e) => store_no(&e),
                }
            }
            "HAVESPACE" => {
                let (Some(sname), Some(size)) = (text(0), text(1).and_then(|n| n.parse::<u64>().ok())) else {
                    return no(None, "Usage: HAVESPACE name size");
                };
                if size > self.max_script() {
                    return no(Some("QUOTA/MAXSIZE"), "Script too large");
                }
                match store.run(move |s| s.sieve_list(id)).await {
                    Ok(l) if l.len() as u32 >= max_scripts && !l.iter().any(|x| x.name == sname) => {
                        no(Some("QUOTA/MAXSCRIPTS"), "Too many scripts")
                    }
                    Ok(_) => ok("Putscript would succeed"),
                    Err(e) => store_no(&e),
                }
            }
            "LISTSCRIPTS" => match store.run(move |s| s.sieve_list(id)).await {
                Ok(l) => {
                    let mut v = Vec::new();
                    for sc in l {
                        v.extend_from_slice(&string(sc.name.as_bytes()));
                        if sc.active {
                            v.extend_from_slice(b" ACTIVE");
                        }
                        v.extend_from_slice(b"\r\n");
                    }
                    v.extend_from_slice(&ok("Listscripts completed"));
                    v
                }
                Err(e) => store_no(&e),
            },
            "SETACTIVE" => {
                let Some(sname) = text(0) else {
                    return no(None, "Usage: SETACTIVE name");
                };
                let target = (!sname.is_empty()).then_some(sname);
                match store.run(move |s| s.sieve_activate(id, target.as_deref())).await {
                    Ok(()) => ok("Setactive completed"),
                    Err(e) => store_no(&e),
                }
            }
            "GETSCRIPT" => {
                let Some(sname) = text(0) else {
                    return no(None, "Usage: GETSCRIPT name");
                };
                match store.run(move |s| s.sieve_get(id, &sname)).await {
                    Ok(script) => {
                        let mut v = format!("{{{}}}\r\n", script.len()).into_bytes();
                        v.extend_from_slice(&script);
                        v.extend_from_slice(b"\r\n");
                        v.extend_from_slice(&ok("Getscript completed"));
                        v
                    }
                    Err(e) => store_no(&e),
                }
            }
            "DELETESCRIPT" => {
                let Some(sname) = text(0) else {
                    return no(None, "Usage: DELETESCRIPT name");
                };
                match store.run(move |s| s.sieve_delete(id, &sname)).await {
                    Ok(()) => ok("Deletescript completed"),
                    Err(StoreError::Refused(_)) => no(Some("ACTIVE"), "You may not delete the active script"),
                    Err(e) => store_no(&e),
                }
            }
            "RENAMESCRIPT" => {
                let (Some(from), Some(to)) = (text(0), text(1)) else {
                    return no(None, "Usage: RENAMESCRIPT old new");
                };
                match store.run(move |s| s.sieve_rename(id, &from, &to)).await {
                    Ok(()) => ok("Renamescript completed"),
                    Err(e) => store_no(&e),
                }
            }
            _ => no(None, "Unknown command"),
        }
    }
}

fn store_no(e: &StoreError) -> Vec<u8> {
    match e {
        StoreError::NotFound(_) => no(Some("NONEXISTENT"), "There is no script by that name"),
        StoreError::Exists(_) => no(Some("ALREADYEXISTS"), "A script by that name already exists"),
        StoreError::Invalid(m) => no(None, m),
        e => {
            tracing::error!("managesieve: store error: {e}");
            no(Some("TRYLATER"), "Temporary failure, try again later")
        }
    }
}
