//! The 256-bit watermark secret and its public fingerprint.
//!
//! The secret never leaves this module in printable form: `Debug` shows the fingerprint,
//! there is no `Display`, no `Serialize`, and errors about a key file never quote it.

use std::fmt;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// First line of every key file; also what distinguishes it from any other 64-hex-digit file.
const KEY_FILE_TAG: &str = "tracemark-key-v1";
/// Domain separation for the fingerprint hash, so it can never equal another hash of the key.
const FINGERPRINT_DOMAIN: &[u8] = b"tracemark/key-fingerprint/v1";

/// A 256-bit watermark key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Wraps raw key bytes (tests, or keys held in a secret store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// Draws a fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        use rand_core::TryRngCore;
        let mut bytes = [0u8; 32];
        rand_core::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Rng(e.to_string()))?;
        Ok(SecretKey(bytes))
    }

    /// The raw bytes, for the PRF only.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A public identifier of the key: the first 16 hex digits of a domain-separated SHA-256.
    ///
    /// 64 bits are enough to tell keys apart in reports and cannot be inverted to the key.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(FINGERPRINT_DOMAIN);
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    /// Reads a key file written by [`SecretKey::write_new`].
    pub fn read(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        // A key file is about 90 bytes; refuse to slurp anything large by mistake.
        if meta.len() > 4096 {
            return Err(malformed(path, "file is too large"));
        }
        let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = std::str::from_utf8(&raw).map_err(|_| malformed(path, "not UTF-8 text"))?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(KEY_FILE_TAG) {
            return Err(malformed(path, "missing the tracemark-key-v1 header"));
        }
        let hex_line = lines.next().ok_or_else(|| malformed(path, "no key line"))?;
        if lines.next().is_some() {
            return Err(malformed(path, "unexpected extra lines"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_line, &mut bytes)
            .map_err(|_| malformed(path, "key line is not 64 hex digits"))?;
        Ok(SecretKey(bytes))
    }

    /// Writes the key to a new file readable by its owner only (mode 0600 on Unix).
    ///
    /// Refuses to overwrite an existing file: losing a key loses every watermark made with it.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
        let body = format!("{KEY_FILE_TAG}\n{}\n", hex::encode(self.0));
        file.write_all(body.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(path, e))
    }
}

fn malformed(path: &Path, reason: &'static str) -> Error {
    Error::MalformedKey {
        path: path.to_path_buf(),
        reason,
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(fingerprint={})", self.fingerprint())
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        // Best effort: do not leave the secret in freed memory. black_box keeps the
        // store from being optimised away as dead.
        self.0 = [0u8; 32];
        std::hint::black_box(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_fingerprint_not_secret() {
        let key = SecretKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode([0xab; 32])[..16]));
        assert!(shown.contains(&key.fingerprint()));
        assert_eq!(key.fingerprint().len(), 16);
    }

    #[test]
    fn write_then_read_round_trips_with_owner_only_mode() {
        let dir = std::env::temp_dir().join(format!("tm-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.key");
        let _ = std::fs::remove_file(&path);
        let key = SecretKey::generate().unwrap();
        key.write_new(&path).unwrap();
        assert_eq!(SecretKey::read(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(key.write_new(&path), Err(Error::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_key_errors_do_not_echo_content() {
        let dir = std::env::temp_dir().join(format!("tm-badkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.key");
        let secretish =
            "tracemark-key-v1\nzz3456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
        std::fs::write(&path, secretish).unwrap();
        let msg = SecretKey::read(&path).unwrap_err().to_string();
        assert!(msg.contains("not 64 hex digits"), "{msg}");
        assert!(!msg.contains("3456789abcdef"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
