//! What every Letterbox protocol session shares.
//!
//! - [`Context`]: the store and configuration every session gets.
//! - [`Peer`]: who is connected and how (loopback, TLS), and so whether plaintext
//!   password authentication is allowed (`[auth] allow_plaintext`, RFC 8314 spirit).
//! - [`read_line`]: a CRLF (or bare LF) line with a hard length limit, so a client that
//!   never sends a line end cannot grow memory.
//! - [`sasl`]: RFC 4616 PLAIN and the LOGIN mechanism's base64 steps.
//!
//! Protocol crates expose a `handle(stream, peer)` per connection, generic over the
//! stream ([`Stream`]) so TLS wraps in without touching them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite};

pub mod auth;
pub mod budget;
pub mod metrics;
pub mod sasl;
pub mod tls;
pub mod userip;

pub use letterbox_config::Config;
pub use letterbox_store::Store;

/// A connection's byte stream: TCP now, TLS-wrapped later.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A connection handed to a protocol, boxed so that plain TCP and TLS look alike.
pub type BoxStream = Box<dyn Stream>;

/// A protocol served on a listener. The binary accepts connections (enforcing the
/// connection limits) and calls [`Service::serve`] once per connection, in its own task.
/// The session ends when the future completes; it must never panic, whatever it is sent.
pub trait Service: Send + Sync + 'static {
    /// The listener kind, as named under `[listen]` (`smtp`, `lmtp`, `pop3`, `imap`...).
    fn name(&self) -> &'static str;
    /// What to send a client refused for `[limits] max_connections` or
    /// `max_connections_per_ip`, in the protocol's own words (SMTP `421`, POP3 `-ERR`,
    /// IMAP `* BYE`), before the connection is closed. Empty: close without a word.
    /// The binary writes it with a short time-out, on plaintext listeners only (an
    /// implicit-TLS listener closes without a handshake, which would cost more than the
    /// refused session is worth).
    fn busy(&self) -> &'static [u8] {
        b""
    }
    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// Shared by every session of the server.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub config: Arc<Config>,
    /// The server's TLS (for STARTTLS/STLS); `None` where TLS is not set up (unit tests).
    pub tls: Option<Arc<tls::Tls>>,
    /// Failed-login counts, shared by every protocol (see [`auth::login`]).
    pub throttle: Arc<auth::Throttle>,
    /// Message content held in memory while being received, all sessions together.
    pub content_budget: Arc<budget::Budget>,
    /// IMAP/POP3 sessions per user and address (`[limits] max_userip_connections`).
    pub userip: Arc<userip::UserIpLimits>,
}

impl Context {
    /// A context without TLS, with a fresh login throttle.
    pub fn new(store: Store, config: Arc<Config>) -> Context {
        let content_budget = Arc::new(budget::Budget::new(config.limits.max_buffered_content.0));
        Context {
            store,
            config,
            tls: None,
            throttle: Arc::default(),
            content_budget,
            userip: Arc::default(),
        }
    }

    /// The same context with TLS available.
    pub fn with_tls(mut self, tls: Arc<tls::Tls>) -> Context {
        self.tls = Some(tls);
        self
    }

    /// A place for a logged-in IMAP/POP3 session of `account` from `peer` within
    /// `[limits] max_userip_connections`; `None`: the limit is reached.
    pub fn userip_slot(
        &self,
        peer: &Peer,
        account: letterbox_store::AccountId,
    ) -> Option<userip::UserIpSlot> {
        self.userip.acquire(
            account,
            peer.addr.ip(),
            self.config.limits.max_userip_connections,
        )
    }

    /// Checks a login through the shared throttle (see [`auth::login`]): the account
    /// password only, recorded as protocol `web` (the portal's login).
    pub async fn login(&self, peer: &Peer, user: &str, password: &str) -> auth::Login {
        auth::login(self, &self.throttle, peer, user, password).await
    }

    /// Checks a mail protocol's login through the shared throttle (see
    /// [`auth::login_for`]): the account password or an application password for
    /// `protocol`.
    pub async fn login_for(
        &self,
        peer: &Peer,
        protocol: letterbox_store::Protocol,
        user: &str,
        password: &str,
    ) -> auth::Login {
        auth::login_for(self, &self.throttle, peer, protocol, user, password).await
    }
}

/// The connected client.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub local: SocketAddr,
    /// The connection is (now) protected by TLS.
    pub tls: bool,
}

/// The address as a client's identity: an IPv4-mapped IPv6 address (a dual-stack
/// listener on `[::]`) is the IPv4 address it maps.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What limits and login throttling count a client by: its IPv4 address, or the /64 of
/// its IPv6 address (the smallest block a site is given, so one client can use any of
/// its 2^64 addresses). Loopback stays itself.
pub fn client_net(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        other => other,
    }
}

impl Peer {
    pub fn is_loopback(&self) -> bool {
        canonical_ip(self.addr.ip()).is_loopback()
    }
    /// Password authentication is allowed over TLS, from loopback, or when the operator
    /// says so with `[auth] allow_plaintext = true`.
    pub fn plaintext_auth_allowed(&self, config: &Config) -> bool {
        self.tls || self.is_loopback() || config.auth.allow_plaintext
    }
}

/// Outcome of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its line end.
    Ok,
    /// The line exceeded the limit; it was read to its end and discarded.
    TooLong,
    /// The client closed the connection (what was read of a partial line is discarded).
    Eof,
}

/// Reads one line into `buf` (cleared first, line end stripped), never holding more
/// than `max` octets. A bare LF ends a line too, as robust servers accept.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        if !too_long {
            if buf.len() + n > max + 2 {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(n);
        if done {
            if too_long {
                return Ok(Line::TooLong);
            }
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.len() > max {
                buf.clear();
                return Ok(Line::TooLong);
            }
            return Ok(Line::Ok);
        }
    }
}

/// A size for people: `1.5 MiB`, `200 MiB`, `812 KiB`, `900 bytes`.
pub fn human_size(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, unit) in UNITS {
        if n >= unit {
            let v = n as f64 / unit as f64;
            return if v >= 100.0 || n.is_multiple_of(unit) {
                format!("{:.0} {name}", v)
            } else {
                format!("{:.1} {name}", v)
            };
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_identity() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_net(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_net(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_net(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_net(ip("::1")), ip("::1"));
        let peer = |a: &str| Peer {
            addr: a.parse().unwrap(),
            local: "[::]:143".parse().unwrap(),
            tls: false,
        };
        assert!(peer("[::ffff:127.0.0.1]:5000").is_loopback());
        assert!(peer("[::1]:5000").is_loopback());
        assert!(!peer("[::ffff:192.0.2.7]:5000").is_loopback());
    }

    #[tokio::test]
    async fn lines_and_limits() {
        let data: &[u8] = b"HELO x\r\nbare\nxxxxxxxxxxxxxxxxxxxx\r\nok\r\npartial";
        let mut r = tokio::io::BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Ok);
        assert_eq!(buf, b"HELO x");
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Ok);
        assert_eq!(buf, b"bare");
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            Line::TooLong
        );
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Ok);
        assert_eq!(buf, b"ok");
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Eof);
    }
}
