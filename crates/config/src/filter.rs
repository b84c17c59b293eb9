//! `[filter]`: inbound filtering (issue 13): authenticity checks of received mail (SPF,
//! DKIM, DMARC, ARC), spam scanning through rspamd, and users' Sieve scripts.

use crate::ByteSize;
use serde::Deserialize;

/// What to do with mail whose DMARC policy asks for an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcAction {
    /// `550 5.7.1` at the end of DATA.
    Reject,
    /// Delivered into the Junk folder.
    Quarantine,
    /// Delivered as usual; only the `Authentication-Results` header says so.
    Report,
}

/// What to do when rspamd cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScannerDown {
    /// Deliver, marked `X-Spam-Status: Unscanned` (warning in the log).
    Accept,
    /// `451 4.7.1`: the sender tries again later.
    Tempfail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// Run SPF, DKIM, DMARC and ARC on mail received by the `smtp` and `lmtp` listeners.
    pub check_auth: bool,
    /// The resolver SPF, DKIM and DMARC ask, `ip:port` (UDP and TCP); empty: the
    /// system's (`/etc/resolv.conf`).
    pub dns: String,
    /// Seconds a DNS query may take.
    pub dns_timeout: u64,
    /// authserv-id of our `Authentication-Results` (RFC 8601); empty: `hostname`.
    pub authserv_id: String,
    /// What a failing message under DMARC `p=reject` gets.
    pub dmarc_reject: DmarcAction,
    /// What a failing message under DMARC `p=quarantine` gets.
    pub dmarc_quarantine: DmarcAction,
    /// rspamd's HTTP address (`http://127.0.0.1:11333`); empty: no spam scanning.
    pub rspamd: String,
    /// Seconds a scan may take before rspamd counts as down.
    pub rspamd_timeout: u64,
    /// rspamd down or failing: `accept` (marked unscanned) or `tempfail` (4xx).
    pub rspamd_down: ScannerDown,
    /// Idle HTTP connections to rspamd kept open for the next scans (HTTP/1.1
    /// keep-alive); 0: a new connection per message.
    pub rspamd_keepalive: u32,
    /// rspamd's controller (`http://127.0.0.1:11334`): a message a user moves into the
    /// Junk folder is learned as spam there, one moved out of it as ham. Empty: no
    /// learning.
    pub rspamd_controller: String,
    /// The controller's password (`Password` header); empty: none (rspamd trusts
    /// loopback clients by default, its `secure_ip`).
    pub rspamd_password: String,
    /// Messages larger than this are not sent to rspamd (delivered unscanned).
    pub rspamd_max_size: ByteSize,
    /// The folder spam and DMARC quarantine go to.
    pub junk_folder: String,
    /// Run users' Sieve scripts at delivery.
    pub sieve: bool,
    /// Largest Sieve script accepted (CLI, ManageSieve).
    pub sieve_max_script_size: ByteSize,
    /// Scripts per account.
    pub sieve_max_scripts: u32,
    /// Instructions one script run may execute before it is cut off (the message then
    /// goes to INBOX).
    pub sieve_max_instructions: u64,
    /// Messages a script may send per delivery (vacation replies, redirects).
    pub sieve_max_out_messages: u32,
    /// Days between two vacation replies to one sender when the script gives no `:days`
    /// (RFC 5230 4.1 suggests 7).
    pub vacation_default_days: u64,
    /// `redirect` actions one script run may carry out (Pigeonhole's
    /// `sieve_max_redirects`); the ones past it are not done, and the message is kept
    /// unless an earlier redirect or `fileinto` already placed it.
    pub sieve_max_redirects: u32,
    /// A message with this many `Received` fields or more is not redirected (RFC 5228
    /// 4.2's loop control, the hop count of RFC 5321 6.3): it is kept instead.
    pub sieve_redirect_max_hops: u32,
    /// Seconds during which one message (by Message-ID) is redirected to one address
    /// once only (Pigeonhole's `sieve_redirect_duplicate_period`): a message that comes
    /// back around a forwarding loop is not sent again.
    pub sieve_redirect_duplicate_period: u64,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            check_auth: false,
            dns: String::new(),
            dns_timeout: 5,
            authserv_id: String::new(),
            dmarc_reject: DmarcAction::Reject,
            dmarc_quarantine: DmarcAction::Quarantine,
            rspamd: String::new(),
            rspamd_timeout: 20,
            rspamd_down: ScannerDown::Accept,
            rspamd_keepalive: 32,
            rspamd_controller: String::new(),
            rspamd_password: String::new(),
            rspamd_max_size: ByteSize(20 * 1024 * 1024),
            junk_folder: "Junk".into(),
            sieve: true,
            sieve_max_script_size: ByteSize(64 * 1024),
            sieve_max_scripts: 16,
            sieve_max_instructions: 20_000,
            sieve_max_out_messages: 3,
            vacation_default_days: 7,
            sieve_max_redirects: 4,
            sieve_redirect_max_hops: 30,
            sieve_redirect_duplicate_period: 12 * 3600,
        }
    }
}
