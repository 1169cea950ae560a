//! The `secrets` section: where the keys that seal secrets at rest come
//! from. Never the database, and best not this file either: the current key
//! is given as `AWFDRS_SECRETS_KEY_FILE` (a mounted file) or
//! `AWFDRS_SECRETS_KEY` (the key itself), and keys being rotated out as
//! `AWFDRS_SECRETS_OLD_KEYS_FILE` or `AWFDRS_SECRETS_OLD_KEYS`. A key is
//! the standard base64 of 32 random bytes (`openssl rand -base64 32`).
//! Keys never appear in `Debug` output or in error messages.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// The variables that give the current key, for messages.
pub const KEY_VARIABLES: &str = "AWFDRS_SECRETS_KEY_FILE or AWFDRS_SECRETS_KEY";

/// Where the keys come from; empty means not given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The current key, base64 (`AWFDRS_SECRETS_KEY`).
    pub key: Hidden,
    /// A file holding the current key (`AWFDRS_SECRETS_KEY_FILE`).
    pub key_file: String,
    /// Old keys, comma-separated (`AWFDRS_SECRETS_OLD_KEYS`).
    pub old_keys: Hidden,
    /// A file of old keys, one per line or comma-separated
    /// (`AWFDRS_SECRETS_OLD_KEYS_FILE`).
    pub old_keys_file: String,
}

/// A configuration value that must not be shown.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Hidden(pub String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// The keys read from where the section says.
#[derive(Clone)]
pub struct SecretKeys {
    /// Seals, and opens.
    pub current: [u8; 32],
    /// Only open.
    pub old: Vec<[u8; 32]>,
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKeys {{ current: ***, old: {} keys }}",
            self.old.len()
        )
    }
}

impl SecretsConfig {
    /// The keys, read (files included) and decoded; `None` when no current
    /// key is given.
    ///
    /// # Errors
    /// Every problem, with its key path: a key given twice, an unreadable
    /// file, a key that is not base64 of 32 bytes, old keys without a
    /// current one.
    pub fn keys(&self) -> Result<Option<SecretKeys>, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let mut fail = |path: &str, reason: String| errs.push((path.to_owned(), reason));
        let current = match (self.key.0.trim(), self.key_file.trim()) {
            ("", "") => None,
            (key, "") => decode(key)
                .map_err(|why| fail("secrets.key", format!("AWFDRS_SECRETS_KEY {why}")))
                .ok(),
            ("", file) => read(file)
                .and_then(|text| decode(text.trim()).map_err(|why| format!("{file}: {why}")))
                .map_err(|why| fail("secrets.key_file", why))
                .ok(),
            _ => {
                fail(
                    "secrets.key",
                    "give the current key once: AWFDRS_SECRETS_KEY or AWFDRS_SECRETS_KEY_FILE, not both"
                        .to_owned(),
                );
                None
            }
        };
        let mut old = Vec::new();
        for (i, k) in list(&self.old_keys.0).enumerate() {
            match decode(k) {
                Ok(k) => old.push(k),
                Err(why) => fail("secrets.old_keys", format!("old key {}: {why}", i + 1)),
            }
        }
        let file = self.old_keys_file.trim();
        if !file.is_empty() {
            match read(file) {
                Ok(text) => {
                    for (i, k) in list(&text).enumerate() {
                        match decode(k) {
                            Ok(k) => old.push(k),
                            Err(why) => fail(
                                "secrets.old_keys_file",
                                format!("{file}: old key {}: {why}", i + 1),
                            ),
                        }
                    }
                }
                Err(why) => fail("secrets.old_keys_file", why),
            }
        }
        let given = !self.key.0.trim().is_empty() || !self.key_file.trim().is_empty();
        if !old.is_empty() && !given {
            fail(
                "secrets.old_keys",
                format!("old keys only open secrets: give the current key too ({KEY_VARIABLES})"),
            );
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(current.map(|current| SecretKeys { current, old }))
    }
}

/// Keys separated by commas or line ends, blanks and `#` comment lines
/// left out.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// A key file's text.
fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// A key from its base64; the reason (without the value) otherwise.
fn decode(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| "is not standard base64 (make a key with `openssl rand -base64 32`)")?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "is {} bytes, not 32 (make a key with `openssl rand -base64 32`)",
            bytes.len()
        )
    })
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
