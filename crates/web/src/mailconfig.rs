//! What a mail program needs to reach this server, from the live listener configuration
//! (`[listen]`): host name, ports, TLS. The autoconfiguration documents (Thunderbird's
//! `config-v1.1.xml`, Microsoft's Autodiscover, Apple's `.mobileconfig`) and the user's
//! settings page all come from here, so none of them advertises a port that is not
//! configured (a listener left empty is absent; `serve` binds every configured one or
//! refuses to start).
//!
//! The host clients are told is `[web] mail_host`, or else the top-level `hostname`
//! (the name in the greeting banners and, usually, the TLS certificate).
//!
//! Order is preference, as RFC 8314 section 3 recommends: implicit TLS (`imaps`,
//! `pop3s`, `submissions`) before STARTTLS on the plain ports; IMAP before POP3. Every
//! plain listener offers STARTTLS (a certificate is generated when none is configured),
//! so no entry is ever without TLS.

use letterbox_config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Imap,
    Pop3,
    Smtp,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Imap => "imap",
            Kind::Pop3 => "pop3",
            Kind::Smtp => "smtp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first octet (RFC 8314).
    Tls,
    /// Plain, upgraded with STARTTLS/STLS.
    StartTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: Kind,
    pub port: u16,
    pub security: Security,
}

/// The host name clients should connect to.
pub fn mail_host(config: &Config) -> &str {
    if config.web.mail_host.is_empty() {
        &config.hostname
    } else {
        &config.web.mail_host
    }
}

/// The configured mail listeners, in order of preference, one entry per distinct port.
pub fn endpoints(config: &Config) -> Vec<Endpoint> {
    let l = &config.listen;
    let lists = [
        (Kind::Imap, Security::Tls, &l.imaps),
        (Kind::Imap, Security::StartTls, &l.imap),
        (Kind::Pop3, Security::Tls, &l.pop3s),
        (Kind::Pop3, Security::StartTls, &l.pop3),
        (Kind::Smtp, Security::Tls, &l.submissions),
        (Kind::Smtp, Security::StartTls, &l.submission),
    ];
    let mut out: Vec<Endpoint> = Vec::new();
    for (kind, security, addrs) in lists {
        for a in addrs.iter() {
            let e = Endpoint {
                kind,
                port: a.port(),
                security,
            };
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// The first endpoint of a kind (the preferred one).
pub fn preferred(config: &Config, kind: Kind) -> Option<Endpoint> {
    endpoints(config).into_iter().find(|e| e.kind == kind)
}

/// XML character data and attribute values, escaped.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// Thunderbird's autoconfiguration document (`config-v1.1.xml`, the format of
/// wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat) for `domain`.
pub fn thunderbird(config: &Config, domain: &str) -> String {
    let host = xml_escape(mail_host(config));
    let domain = xml_escape(domain);
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n");
    x.push_str(&format!("  <emailProvider id=\"{domain}\">\n    <domain>{domain}</domain>\n    <displayName>{domain} (Letterbox)</displayName>\n    <displayShortName>{domain}</displayShortName>\n"));
    for e in endpoints(config) {
        let (tag, ty) = match e.kind {
            Kind::Imap => ("incomingServer", "imap"),
            Kind::Pop3 => ("incomingServer", "pop3"),
            Kind::Smtp => ("outgoingServer", "smtp"),
        };
        let socket = match e.security {
            Security::Tls => "SSL",
            Security::StartTls => "STARTTLS",
        };
        x.push_str(&format!(
            "    <{tag} type=\"{ty}\">\n      <hostname>{host}</hostname>\n      <port>{}</port>\n      <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    </{tag}>\n",
            e.port
        ));
    }
    x.push_str("  </emailProvider>\n</clientConfig>\n");
    x
}

/// What an Autodiscover request asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct AutodiscoverRequest {
    pub email: String,
    pub schema: Option<String>,
}

/// The response schema we answer in (Outlook's POX "2006a").
pub const AUTODISCOVER_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// Reads a POX Autodiscover request (`<Autodiscover><Request><EMailAddress>...`,
/// [MS-OXDSCLI] 2.2.3). Element names are matched without their namespace prefix;
/// `None` when it is not well-formed XML or has no address.
pub fn parse_autodiscover(body: &[u8]) -> Option<AutodiscoverRequest> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let (mut email, mut schema) = (None, None);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) => {
                if path.len() > 16 {
                    return None;
                }
                path.push(e.local_name().as_ref().to_vec());
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().ok()?.trim().to_string();
                match path.last().map(Vec::as_slice) {
                    Some(b"EMailAddress") => email = Some(text),
                    Some(b"AcceptableResponseSchema") => schema = Some(text),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(AutodiscoverRequest {
        email: email.filter(|e| !e.is_empty())?,
        schema,
    })
}

/// The Autodiscover answer for `email` ([MS-OXDSCLI] 2.2.4, Outlook POX 2006a): one
/// `Protocol` per endpoint, IMAP and POP3 as incoming, SMTP as outgoing.
pub fn autodiscover(config: &Config, email: &str) -> String {
    let host = xml_escape(mail_host(config));
    let email = xml_escape(email);
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n",
    );
    x.push_str(&format!(
        "  <Response xmlns=\"{AUTODISCOVER_RESPONSE_SCHEMA}\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n"
    ));
    for e in endpoints(config) {
        let ty = match e.kind {
            Kind::Imap => "IMAP",
            Kind::Pop3 => "POP3",
            Kind::Smtp => "SMTP",
        };
        let (ssl, encryption) = match e.security {
            Security::Tls => ("on", "SSL"),
            Security::StartTls => ("on", "TLS"),
        };
        x.push_str(&format!(
            "      <Protocol>\n        <Type>{ty}</Type>\n        <Server>{host}</Server>\n        <Port>{}</Port>\n        <DomainRequired>off</DomainRequired>\n        <LoginName>{email}</LoginName>\n        <SPA>off</SPA>\n        <SSL>{ssl}</SSL>\n        <Encryption>{encryption}</Encryption>\n        <AuthRequired>on</AuthRequired>\n",
            e.port
        ));
        if e.kind == Kind::Smtp {
            x.push_str("        <UsePOPAuth>on</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n");
        }
        x.push_str("      </Protocol>\n");
    }
    x.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    x
}

/// An Autodiscover error response: 600 "Invalid Request", 601 "Requested schema
/// version not supported" ([MS-OXDSCLI] 2.2.4.1.1.1).
pub fn autodiscover_error(code: u16, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response>\n    <Error Time=\"{}\" Id=\"{}\">\n      <ErrorCode>{code}</ErrorCode>\n      <Message>{}</Message>\n      <DebugData />\n    </Error>\n  </Response>\n</Autodiscover>\n",
        hms(letterbox_store::now()),
        std::process::id(),
        xml_escape(message)
    )
}

fn hms(t: i64) -> String {
    let s = t.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// A stable UUID (version 4 layout) made from `seed`, so that downloading the profile
/// again replaces the installed one instead of adding a second.
fn uuid_from(seed: &str) -> String {
    let h = blake3::hash(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b).to_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// Apple's configuration profile for one account (`.mobileconfig`, payload type
/// `com.apple.mail.managed`, developer.apple.com/documentation/devicemanagement/mail):
/// the preferred IMAP endpoint (POP3 when there is no IMAP listener) and the preferred
/// submission endpoint. `None` when no incoming listener is configured. No password is
/// included: the device asks for it when installing.
pub fn mobileconfig(config: &Config, address: &str) -> Option<Vec<u8>> {
    use plist::{Dictionary, Value};
    let incoming = preferred(config, Kind::Imap).or_else(|| preferred(config, Kind::Pop3))?;
    let host = mail_host(config).to_string();
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    let reverse: Vec<&str> = host.split('.').rev().collect();
    let ident = format!(
        "{}.letterbox.{}",
        reverse.join("."),
        address.replace(['@', '.'], "-")
    );
    let mut mail = Dictionary::new();
    let s = |v: &str| Value::String(v.to_string());
    mail.insert("PayloadType".into(), s("com.apple.mail.managed"));
    mail.insert("PayloadVersion".into(), Value::Integer(1.into()));
    mail.insert("PayloadIdentifier".into(), s(&format!("{ident}.mail")));
    mail.insert(
        "PayloadUUID".into(),
        s(&uuid_from(&format!("{ident}.mail"))),
    );
    mail.insert("PayloadDisplayName".into(), s(&format!("Mail ({address})")));
    mail.insert("EmailAccountDescription".into(), s(address));
    mail.insert("EmailAccountName".into(), s(address));
    mail.insert("EmailAddress".into(), s(address));
    let account_type = match incoming.kind {
        Kind::Pop3 => "EmailTypePOP",
        _ => "EmailTypeIMAP",
    };
    mail.insert("EmailAccountType".into(), s(account_type));
    mail.insert("IncomingMailServerHostName".into(), s(&host));
    mail.insert(
        "IncomingMailServerPortNumber".into(),
        Value::Integer(incoming.port.into()),
    );
    mail.insert(
        "IncomingMailServerUseSSL".into(),
        Value::Boolean(incoming.security == Security::Tls),
    );
    mail.insert("IncomingMailServerUsername".into(), s(address));
    mail.insert(
        "IncomingMailServerAuthentication".into(),
        s("EmailAuthPassword"),
    );
    if let Some(out) = preferred(config, Kind::Smtp) {
        mail.insert("OutgoingMailServerHostName".into(), s(&host));
        mail.insert(
            "OutgoingMailServerPortNumber".into(),
            Value::Integer(out.port.into()),
        );
        mail.insert(
            "OutgoingMailServerUseSSL".into(),
            Value::Boolean(out.security == Security::Tls),
        );
        mail.insert("OutgoingMailServerUsername".into(), s(address));
        mail.insert(
            "OutgoingMailServerAuthentication".into(),
            s("EmailAuthPassword"),
        );
        mail.insert(
            "OutgoingPasswordSameAsIncomingPassword".into(),
            Value::Boolean(true),
        );
    }
    let mut profile = Dictionary::new();
    profile.insert(
        "PayloadContent".into(),
        Value::Array(vec![Value::Dictionary(mail)]),
    );
    profile.insert("PayloadType".into(), s("Configuration"));
    profile.insert("PayloadVersion".into(), Value::Integer(1.into()));
    profile.insert("PayloadIdentifier".into(), s(&ident));
    profile.insert("PayloadUUID".into(), s(&uuid_from(&ident)));
    profile.insert("PayloadDisplayName".into(), s(&format!("{domain} mail")));
    profile.insert(
        "PayloadDescription".into(),
        s(&format!("Sets up {address} on {host}.")),
    );
    profile.insert("PayloadOrganization".into(), s(domain));
    let mut out = Vec::new();
    Value::Dictionary(profile).to_writer_xml(&mut out).ok()?;
    Some(out)
}
