//! ManageSieve (RFC 5804) on `[listen] managesieve` (4190 by convention): users upload,
//! check, list, activate, fetch, rename and delete their Sieve scripts, as Thunderbird's
//! Sieve add-on, Roundcube's managesieve plugin and `sieve-connect` do.
//!
//! - Greeting and `CAPABILITY`: `IMPLEMENTATION`, `SASL` (PLAIN and LOGIN, only where
//!   plaintext passwords are allowed: TLS, loopback or `[auth] allow_plaintext`; an empty
//!   list otherwise, as RFC 5804 1.7 shows), `SIEVE` (the extensions the filter offers),
//!   `STARTTLS` (when the server has TLS and the connection is plain), `VERSION "1.0"`,
//!   `MAXREDIRECTS`. After STARTTLS the capabilities are sent again (RFC 5804 2.2) and
//!   anything the client pipelined before the handshake is dropped.
//! - `AUTHENTICATE "PLAIN"|"LOGIN"` with or without an initial response, through the
//!   same login gate as IMAP (`Context::login`: growing delays, blocks); `[limits]
//!   max_auth_failures` failures end the session with `BYE`.
//! - `PUTSCRIPT` and `CHECKSCRIPT` compile the script (the filter's Sieve engine) and
//!   refuse a malformed one with `NO "line L, column C: ..."`; scripts over `[filter]
//!   sieve_max_script_size` get `NO (QUOTA/MAXSIZE)`, one more script than
//!   `sieve_max_scripts` `NO (QUOTA/MAXSCRIPTS)`. `HAVESPACE` answers the same limits.
//! - `SETACTIVE ""` deactivates; `DELETESCRIPT` of the active script is `NO (ACTIVE)`;
//!   unknown names are `NO (NONEXISTENT)`, a taken one at `RENAMESCRIPT` `NO
//!   (ALREADYEXISTS)`. `NOOP`, `LOGOUT`, `UNAUTHENTICATE` (RFC 5804 2.14.1).
//!
//! Passwords and script contents never reach the log.

mod parser;
mod session;

use letterbox_proto::{BoxStream, Context, Peer, Service};
use std::sync::Arc;

pub struct ManageSieve {
    ctx: Context,
}

/// The `managesieve` service.
pub fn service(ctx: Context) -> Arc<dyn Service> {
    Arc::new(ManageSieve { ctx })
}

impl Service for ManageSieve {
    fn name(&self) -> &'static str {
        "managesieve"
    }

    fn busy(&self) -> &'static [u8] {
        b"BYE \"Too many connections, try again later\"\r\n"
    }

    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            session::run(self.ctx.clone(), stream, peer).await;
        })
    }
}
