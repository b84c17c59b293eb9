//! API tokens for scripts (issue 14): created by an operator (`letterbox admin token
//! add NAME`), shown once, sent as `Authorization: Bearer TOKEN` to the web API, where
//! they carry operator rights.
//!
//! A token is `lbx_` and 43 base64url characters (32 random bytes). It is stored as a
//! SHA-256 of the whole token, with its first 8 characters after `lbx_` (the selector)
//! in clear to find the row. A slow hash (Argon2id, as for passwords) buys nothing for
//! 256 random bits, which cannot be guessed, and would cost 19 MiB and tens of
//! milliseconds on every API request; GitHub and PyPI store their tokens the same way.

use crate::sqlite::SqliteBackend;
use crate::*;
use base64::Engine;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub last_used: Option<i64>,
}

const PREFIX: &str = "lbx_";
const SELECTOR_LEN: usize = 8;

pub(crate) fn selector(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    (rest.len() == 43 && rest.is_ascii()).then(|| &rest[..SELECTOR_LEN])
}

pub(crate) fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token named `name` (checked): (name, token, selector, digest).
pub(crate) fn new_token(name: &str) -> Result<(String, String, String, Vec<u8>)> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "invalid token name (1 to 64 printable characters)".into(),
        ));
    }
    let raw: [u8; 32] = rand::random();
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let (sel, hash) = (
        selector(&token).unwrap_or_default().to_string(),
        digest(&token),
    );
    Ok((name, token, sel, hash))
}

/// Compares two digests in constant time.
pub(crate) fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl SqliteBackend {
    pub(crate) fn api_token_add(&self, name: &str) -> Result<String> {
        let (name, token, sel, hash) = new_token(name)?;
        self.write(move |ctx| {
            let exists = ctx
                .tx
                .query_row("SELECT 1 FROM api_tokens WHERE name = ?1", [&name], |_| {
                    Ok(())
                })
                .optional()?;
            if exists.is_some() {
                return Err(Error::Exists(format!("API token '{name}'")));
            }
            ctx.tx.execute(
                "INSERT INTO api_tokens (name, selector, hash, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, sel, hash, now()],
            )?;
            Ok(())
        })?;
        Ok(token)
    }

    pub(crate) fn api_token_list(&self) -> Result<Vec<ApiToken>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT name, created, last_used FROM api_tokens ORDER BY name")?;
            let v = st
                .query_map([], |r| {
                    Ok(ApiToken {
                        name: r.get(0)?,
                        created: r.get(1)?,
                        last_used: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn api_token_remove(&self, name: &str) -> Result<()> {
        let name = name.trim().to_string();
        self.write(move |ctx| {
            if ctx
                .tx
                .execute("DELETE FROM api_tokens WHERE name = ?1", [&name])?
                == 0
            {
                return Err(Error::NotFound(format!("API token '{name}'")));
            }
            Ok(())
        })
    }

    /// The token's name when `token` is a live API token.
    pub(crate) fn api_token_check(&self, token: &str) -> Result<Option<String>> {
        let Some(sel) = selector(token) else {
            return Ok(None);
        };
        let want = digest(token);
        let rows = self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, name, hash, last_used FROM api_tokens WHERE selector = ?1",
            )?;
            let v = st
                .query_map([sel], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        for (id, name, hash, last_used) in rows {
            if same_digest(&hash, &want) {
                let now = now();
                // Last use, to the minute (no write on every request).
                if last_used.is_none_or(|t| t < now - 60) {
                    let _ = self.write_lazy(move |ctx| {
                        ctx.tx.execute(
                            "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1",
                            params![id, now],
                        )?;
                        Ok(())
                    });
                }
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn selectors() {
        let t = format!("lbx_{}", "A".repeat(43));
        assert_eq!(super::selector(&t), Some("AAAAAAAA"));
        assert_eq!(super::selector("lbx_short"), None);
        assert_eq!(super::selector("Bearer x"), None);
    }
}
