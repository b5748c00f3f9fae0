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
    ///
    /// Like ssh with its private keys, refuses a key file that other users can read or
    /// write, or that sits in a directory they can write (they could swap it), unless the
    /// environment sets `TRACEMARK_ALLOW_SHARED_KEY=1`. An all-zero key is refused: it is what
    /// an uninitialised secret store hands out.
    pub fn read(path: &Path) -> Result<Self> {
        // A key file is about 90 bytes; refuse to slurp anything large by mistake.
        let raw = crate::files::read_limited(path, MAX_KEY_FILE, "key file")?;
        let key = Self::parse(&raw, path)?;
        if std::env::var_os(ALLOW_SHARED).is_none_or(|v| v != "1") {
            check_private(path)?;
        }
        Ok(key)
    }

    /// Parses the contents of a key file (`path` only names it in errors, which never quote
    /// the contents).
    pub fn parse(raw: &[u8], path: &Path) -> Result<Self> {
        let text = std::str::from_utf8(raw).map_err(|_| malformed(path, "not UTF-8 text"))?;
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
        if bytes == [0u8; 32] {
            return Err(malformed(path, "the key is all zeros"));
        }
        Ok(SecretKey(bytes))
    }

    /// Whether `text` holds a tracemark key file: text inputs are checked with this so that a
    /// key passed by mistake where a document is expected is refused, not scored and printed.
    /// It looks for the header followed by a 64-hex-digit line, anywhere in the text.
    pub fn looks_like_key_file(text: &[u8]) -> bool {
        let tag = KEY_FILE_TAG.as_bytes();
        text.windows(tag.len()).enumerate().any(|(at, w)| {
            if w != tag {
                return false;
            }
            let rest = &text[at + tag.len()..];
            let start = rest.iter().position(|b| !b.is_ascii_whitespace());
            start.is_some_and(|s| {
                rest.len() >= s + 64 && rest[s..s + 64].iter().all(u8::is_ascii_hexdigit)
            })
        })
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

/// Largest key file read (a key file is about 90 bytes).
const MAX_KEY_FILE: u64 = 4096;
/// The environment variable that allows a key file other users can reach.
const ALLOW_SHARED: &str = "TRACEMARK_ALLOW_SHARED_KEY";

/// Refuses a key file other users can read or write, or one in a directory they can write
/// without the sticky bit (they could replace the key).
#[cfg(unix)]
pub(crate) fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Unreadable {
            path: path.to_path_buf(),
            reason: format!(
                "the key file is accessible by other users (mode {:04o}): run `chmod 600` on \
                 it, or set {ALLOW_SHARED}=1 to use it anyway",
                mode & 0o7777
            ),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_mode = std::fs::metadata(dir)
        .map_err(|e| Error::io(dir, e))?
        .permissions()
        .mode();
    if dir_mode & 0o022 != 0 && dir_mode & 0o1000 == 0 {
        return Err(Error::Unreadable {
            path: path.to_path_buf(),
            reason: format!(
                "the key file's directory is writable by other users (mode {:04o}), who could \
                 replace the key: run `chmod 700` on it, or set {ALLOW_SHARED}=1",
                dir_mode & 0o7777
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private(_path: &Path) -> Result<()> {
    Ok(())
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
        // Keys are refused in directories others can write: keep the test's private
        // whatever the umask.
        #[cfg(unix)]
        std::fs::set_permissions(
            &dir,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .unwrap();
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

    #[cfg(unix)]
    #[test]
    fn keys_other_users_can_reach_are_refused_and_devices_are_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tm-keymode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Keys are refused in directories others can write: keep the test's private
        // whatever the umask.
        #[cfg(unix)]
        std::fs::set_permissions(
            &dir,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.join("k.key");
        SecretKey::generate().unwrap().write_new(&path).unwrap();
        SecretKey::read(&path).unwrap();
        for mode in [0o644, 0o660, 0o606] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let msg = SecretKey::read(&path).unwrap_err().to_string();
            assert!(
                msg.contains("other users") && msg.contains("chmod 600"),
                "{msg}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let msg = SecretKey::read(&path).unwrap_err().to_string();
        assert!(msg.contains("directory is writable"), "{msg}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let zero = dir.join("zero.key");
        std::fs::write(&zero, format!("{KEY_FILE_TAG}\n{}\n", "0".repeat(64))).unwrap();
        std::fs::set_permissions(&zero, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SecretKey::read(&zero)
            .unwrap_err()
            .to_string()
            .contains("all zeros"));
        // A device reads forever: it must be refused before a byte is read.
        let msg = SecretKey::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_files_are_recognised_inside_text() {
        let body = format!("{KEY_FILE_TAG}\n{}\n", hex::encode([0x5a; 32]));
        assert!(SecretKey::looks_like_key_file(body.as_bytes()));
        let pasted = format!("notes\r\n{KEY_FILE_TAG}  {}", hex::encode([1; 32]));
        assert!(SecretKey::looks_like_key_file(pasted.as_bytes()));
        // The header alone, as in documentation, is not a key.
        assert!(!SecretKey::looks_like_key_file(
            b"files start with tracemark-key-v1 then hex"
        ));
        assert!(!SecretKey::looks_like_key_file(b""));
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
