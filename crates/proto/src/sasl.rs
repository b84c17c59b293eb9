//! SASL decoding: RFC 4616 PLAIN and the (draft-murchison-sasl-login) LOGIN mechanism.
//! The decoded password is handed straight to the store and never logged.

use base64::Engine;

/// Credentials from a SASL exchange.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Authorization identity (empty: same as `user`).
    pub authzid: String,
    pub user: String,
    pub password: String,
}

/// Why a SASL response was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslError {
    /// Not base64, not UTF-8, or not the mechanism's form.
    Malformed,
    /// The client asked to log in as someone else (RFC 4616 authzid); not supported.
    AuthzidMismatch,
    /// The client cancelled with `*`.
    Cancelled,
}

pub fn decode_base64(s: &str) -> Result<Vec<u8>, SaslError> {
    let s = s.trim();
    if s == "*" {
        return Err(SaslError::Cancelled);
    }
    if s == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| SaslError::Malformed)
}

pub fn encode_base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Decodes a PLAIN response (`authzid NUL authcid NUL passwd`, base64).
pub fn plain(response_b64: &str) -> Result<Credentials, SaslError> {
    let raw = decode_base64(response_b64)?;
    let text = String::from_utf8(raw).map_err(|_| SaslError::Malformed)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if user.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user) {
        return Err(SaslError::AuthzidMismatch);
    }
    Ok(Credentials {
        authzid: authzid.to_string(),
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// Decodes one LOGIN step (user name or password, base64).
pub fn login_step(response_b64: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_base64(response_b64)?).map_err(|_| SaslError::Malformed)
}

/// The LOGIN mechanism's challenges, base64 of `Username:` and `Password:`.
pub const LOGIN_USER_CHALLENGE: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASS_CHALLENGE: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_forms() {
        let c = plain(&encode_base64(b"\0alice@example.com\0secret")).unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("alice@example.com", "secret")
        );
        assert!(plain(&encode_base64(b"alice@example.com\0alice@example.com\0pw")).is_ok());
        assert_eq!(
            plain(&encode_base64(b"bob\0alice\0pw")),
            Err(SaslError::AuthzidMismatch)
        );
        assert_eq!(plain("!!!"), Err(SaslError::Malformed));
        assert_eq!(plain(&encode_base64(b"nonul")), Err(SaslError::Malformed));
        assert_eq!(plain("*"), Err(SaslError::Cancelled));
        assert_eq!(login_step("YWxpY2U=").unwrap(), "alice");
    }
}
