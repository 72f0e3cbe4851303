//! Webhook signing secrets at rest. A secret must be usable for signing every delivery, so it
//! cannot be stored as a hash (as company tokens are): it is sealed with XChaCha20-Poly1305 under
//! the service's key, and the log and the read models only ever hold the sealed text.
//!
//! Sealed text: `v1.` then base64url (no padding) of a random 24-byte nonce and the ciphertext
//! with its tag. The version lets a later key or cipher be told apart.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// The environment variable that holds the key (64 hex digits).
pub const KEY_ENV: &str = "FLEET_LEDGER_WEBHOOK_KEY";
/// The file in the data directory that holds a generated key when the variable is not set.
pub const KEY_FILE: &str = "webhook_key";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
const PREFIX: &str = "v1.";
/// Binds each sealed text to its purpose: a ciphertext made for something else never opens here.
const ASSOCIATED_DATA: &[u8] = b"fleet-ledger webhook secret v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{KEY_ENV} must be 64 hex digits (32 bytes, e.g. `openssl rand -hex 32`)")]
    Malformed,
    #[error("webhook key in {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A sealed secret that does not open: made under another key, or altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook secret does not open with this service's key")]
pub struct Unsealable;

/// The 256-bit key secrets are sealed with.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingKey([u8; KEY_BYTES]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

impl SealingKey {
    /// A fixed, public key for tests and the bench, which run on throwaway stores. `serve` never
    /// uses it: it loads [`Self::load`].
    pub fn development() -> Self {
        Self(*b"fleet-ledger development key 32B")
    }

    /// 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut key = [0u8; KEY_BYTES];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| KeyError::Malformed)?;
        Ok(Self(key))
    }

    /// `FLEET_LEDGER_WEBHOOK_KEY` when set; otherwise the key kept in `data_dir`, generated
    /// (mode 0600) the first time, as the JWT secret is. Instances sharing a database must share
    /// the key: set the variable on each.
    pub fn load(data_dir: &Path) -> Result<Self, KeyError> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            if !text.trim().is_empty() {
                return Self::from_hex(&text);
            }
        }
        let path = data_dir.join(KEY_FILE);
        let text = crate::secret_file::read_or_create(&path)
            .map_err(|source| KeyError::File { path, source })?;
        Self::from_hex(&text)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// `secret` sealed under a fresh random nonce.
    pub fn seal(&self, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: ASSOCIATED_DATA,
        };
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret inside `sealed`.
    pub fn open(&self, sealed: &str) -> Result<String, Unsealable> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE_BYTES)
            .ok_or(Unsealable)?;
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: sealed,
            aad: ASSOCIATED_DATA,
        };
        let secret = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| Unsealable)?;
        String::from_utf8(secret).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_never_shows_in_the_text() {
        let key = SealingKey::from_hex(&"ab".repeat(32)).unwrap();
        let secret = "0f".repeat(32);
        let sealed = key.seal(&secret);
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains(&secret));
        assert_ne!(sealed, key.seal(&secret), "a fresh nonce every time");
        assert_eq!(key.open(&sealed).unwrap(), secret);
        assert_eq!(SealingKey::development().open(&sealed), Err(Unsealable));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.open(&String::from_utf8(altered).unwrap()),
            Err(Unsealable)
        );
        assert_eq!(key.open("v1."), Err(Unsealable));
        assert_eq!(key.open(&secret), Err(Unsealable));
    }

    #[test]
    fn a_key_is_exactly_64_hex_digits_and_never_printed() {
        assert!(SealingKey::from_hex(&"AB".repeat(32)).is_ok());
        assert!(SealingKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(SealingKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(SealingKey::from_hex(&"é".repeat(32)).is_err());
        assert_eq!(format!("{:?}", SealingKey::development()), "SealingKey(…)");
    }

    #[test]
    fn a_generated_key_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = SealingKey::load(dir.path()).unwrap();
        let second = SealingKey::load(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_ne!(first, SealingKey::development());
    }
}
