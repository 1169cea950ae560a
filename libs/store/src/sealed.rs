//! Secrets sealed at rest: channel, callback and webhook signing secrets
//! are stored as `v1:<key-id>:<base64(nonce || ciphertext)>`,
//! XChaCha20-Poly1305 with a random 192-bit nonce per value and, as
//! associated data, the row and column the value belongs to
//! ([`Slot`]), so a sealed value copied to another row does not open.
//!
//! The keys come from outside the database (the configuration's `secrets`
//! section): one current key seals, and old keys still open what they
//! sealed until `awfdrs secrets rotate` has sealed it again with the
//! current one. A key is named by its fingerprint, so nobody names keys.
//! A value that is not in the sealed form is a secret stored in plain text
//! before sealing existed: it is read as it is, and sealed by the next
//! rotation (or `awfdrs migrate` / `awfdrs up`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// The version prefix of the sealed form.
const V1: &str = "v1";
/// Bytes of an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;
/// Bytes of a Poly1305 tag.
const TAG_LEN: usize = 16;

/// Where a sealed value lives: its table, column and row. The associated
/// data of its ciphertext, `<table>.<column>:<row>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot(String);

impl Slot {
    /// `channels.secret` of the channel `id`.
    #[must_use]
    pub fn channel(id: uuid::Uuid) -> Self {
        Self::of(&Column::CHANNELS, &id.to_string())
    }

    /// `workflow_callbacks.secret` of `tenant`'s callback of `workflow`.
    #[must_use]
    pub fn callback(tenant: uuid::Uuid, workflow: &str) -> Self {
        Self::of(&Column::CALLBACKS, &format!("{tenant}/{workflow}"))
    }

    /// `tenants.webhook_secret` of the tenant `id`.
    #[must_use]
    pub fn tenant(id: uuid::Uuid) -> Self {
        Self::of(&Column::TENANTS, &id.to_string())
    }

    /// The slot of `row` (as [`Column::row_key`] spells it) in `column`.
    pub(crate) fn of(column: &Column, row: &str) -> Self {
        Self(format!("{}.{}:{row}", column.table, column.column))
    }

    /// The associated data.
    fn aad(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A column that holds sealed secrets, and how its rows are named.
#[derive(Debug)]
pub(crate) struct Column {
    pub table: &'static str,
    pub column: &'static str,
    /// The SQL expression of a row's name in its [`Slot`] (text).
    pub row_key: &'static str,
}

impl Column {
    pub const CHANNELS: Self = Self {
        table: "channels",
        column: "secret",
        row_key: "id::text",
    };
    pub const CALLBACKS: Self = Self {
        table: "workflow_callbacks",
        column: "secret",
        row_key: "tenant_id::text || '/' || workflow_id",
    };
    pub const TENANTS: Self = Self {
        table: "tenants",
        column: "webhook_secret",
        row_key: "id::text",
    };
    /// Every column of secrets.
    pub const ALL: [Self; 3] = [Self::CHANNELS, Self::CALLBACKS, Self::TENANTS];

    /// `table.column`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// Why a stored secret cannot be opened or sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No key is configured, so nothing can be sealed or opened.
    #[error(
        "no key for secrets at rest is configured: set AWFDRS_SECRETS_KEY_FILE (a file holding \
         base64 of 32 random bytes) or AWFDRS_SECRETS_KEY (the base64 itself)"
    )]
    NoKey,
    /// The value was sealed with a key the keyring does not hold.
    #[error(
        "{slot} was sealed with key {key_id}, which is not configured (current key {current}); \
         give it in AWFDRS_SECRETS_OLD_KEYS or AWFDRS_SECRETS_OLD_KEYS_FILE until \
         `awfdrs secrets rotate` has sealed it again"
    )]
    UnknownKey {
        slot: String,
        key_id: String,
        current: String,
    },
    /// The value is not in the sealed form it claims.
    #[error("{slot} is not a sealed secret: {reason}")]
    Malformed { slot: String, reason: &'static str },
    /// The ciphertext does not open with its key: it was altered, or
    /// copied from another row.
    #[error("{slot} does not open with key {key_id}: it was altered or moved from another row")]
    Refused { slot: String, key_id: String },
    /// The secret is beyond what the cipher seals.
    #[error("a secret of {0} bytes is too long to seal")]
    TooLong(usize),
}

/// One key and its fingerprint.
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Self {
        Self {
            id: key_id(bytes),
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }
}

/// The fingerprint that names a key in the sealed form: the first 6 bytes
/// (12 hex digits) of SHA-256 over a label and the key.
#[must_use]
pub fn key_id(bytes: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"awfdrs secrets key id\0")
        .chain_update(bytes)
        .finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys: the current one, which seals, and old ones, which only open.
pub struct Keyring {
    current: Key,
    old: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let old: Vec<&str> = self.old.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("old", &old)
            .finish()
    }
}

/// What a stored value is.
enum Stored<'a> {
    /// Written before secrets were sealed.
    Plain(&'a str),
    /// `v1:<key_id>:<data>`.
    Sealed { key_id: &'a str, data: &'a str },
}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `old` (an old
    /// key equal to the current one is left out).
    #[must_use]
    pub fn new(current: &[u8; 32], old: &[[u8; 32]]) -> Self {
        let current = Key::new(current);
        let mut keys: Vec<Key> = Vec::new();
        for k in old.iter().map(Key::new) {
            if k.id != current.id && !keys.iter().any(|o| o.id == k.id) {
                keys.push(k);
            }
        }
        Self { current, old: keys }
    }

    /// The current key's fingerprint.
    #[must_use]
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// `plain` sealed with the current key for `slot`.
    ///
    /// # Errors
    /// Only for a secret beyond the cipher's limit (256 GiB).
    pub fn seal(&self, slot: &Slot, plain: &str) -> Result<String, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: slot.aad(),
        };
        let sealed = self
            .current
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| SealError::TooLong(plain.len()))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!(
            "{V1}:{}:{}",
            self.current.id,
            STANDARD.encode(bytes)
        ))
    }

    /// The secret `stored` in `slot`: opened when sealed, as it is when it
    /// was stored in plain text.
    ///
    /// # Errors
    /// When it is sealed with a key not in the keyring, malformed, altered
    /// or moved from another slot.
    pub fn open(&self, slot: &Slot, stored: &str) -> Result<String, SealError> {
        let (key_id, data) = match parse(slot, stored)? {
            Stored::Plain(plain) => return Ok(plain.to_owned()),
            Stored::Sealed { key_id, data } => (key_id, data),
        };
        let key = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == key_id)
            .ok_or_else(|| SealError::UnknownKey {
                slot: slot.0.clone(),
                key_id: key_id.to_owned(),
                current: self.current.id.clone(),
            })?;
        let malformed = |reason| SealError::Malformed {
            slot: slot.0.clone(),
            reason,
        };
        let bytes = STANDARD
            .decode(data)
            .map_err(|_| malformed("its data is not base64"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed("its data is too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: slot.aad(),
        };
        let plain = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Refused {
                slot: slot.0.clone(),
                key_id: key.id.clone(),
            })?;
        String::from_utf8(plain).map_err(|_| malformed("it opens to bytes that are not text"))
    }

    /// Whether `stored` is sealed with the current key (else a rotation
    /// seals it again).
    #[must_use]
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(V1)
            .and_then(|s| s.strip_prefix(':'))
            .and_then(|s| s.strip_prefix(self.current.id.as_str()))
            .is_some_and(|s| s.starts_with(':'))
    }
}

/// Whether `stored` claims a sealed form: `v<digits>:`. Generated secrets
/// (`whsec_...`) never do.
pub(crate) fn looks_sealed(stored: &str) -> bool {
    stored.strip_prefix('v').is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest.as_bytes().get(digits) == Some(&b':')
    })
}

/// The form of `stored`.
fn parse<'a>(slot: &Slot, stored: &'a str) -> Result<Stored<'a>, SealError> {
    if !looks_sealed(stored) {
        return Ok(Stored::Plain(stored));
    }
    let malformed = |reason| SealError::Malformed {
        slot: slot.0.clone(),
        reason,
    };
    let mut parts = stored.splitn(3, ':');
    let (version, key_id, data) = (parts.next(), parts.next(), parts.next());
    if version != Some(V1) {
        return Err(malformed("its version is not v1"));
    }
    match (key_id, data) {
        (Some(key_id), Some(data)) if !key_id.is_empty() => Ok(Stored::Sealed { key_id, data }),
        _ => Err(malformed("it is not v1:<key-id>:<data>")),
    }
}

#[cfg(test)]
#[path = "sealed_tests.rs"]
mod tests;
