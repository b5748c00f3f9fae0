//! Account keys: derived from the master key and an account id, never stored.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::green::GreenList;
use crate::key::SecretKey;
use crate::prf::Prf;

/// Longest account id, in bytes of UTF-8.
pub const MAX_ACCOUNT_ID_BYTES: usize = 128;

/// Domain separation of the derivation: no other hash of the master key starts with it.
const ACCOUNT_DOMAIN: &[u8] = b"tracemark/account-key/v1";

/// One account's key: its id and the PRF keyed by
/// SHA-256(`"tracemark/account-key/v1"` ‖ K ‖ len(id) as one byte ‖ id).
///
/// `Debug` shows the id only; the derived key is never shown (and the id is never printed
/// beside key material).
#[derive(Clone)]
pub struct AccountKey {
    id: String,
    prf: Prf,
}

impl AccountKey {
    /// The key of account `id` under the master key. Ids are 1 to 128 bytes of UTF-8 with no
    /// control characters (an id is one line of an accounts file).
    pub fn derive(master: &SecretKey, id: &str) -> Result<Self> {
        check_id(id)?;
        let key = SecretKey::from_bytes(derive_bytes(master.bytes(), id));
        Ok(AccountKey {
            id: id.to_string(),
            prf: Prf::new(&key),
        })
    }

    /// [`AccountKey::derive`] from the master key a green list was built with: what a caller
    /// holding a profile session (and no key bytes) uses.
    pub fn for_green_list(green: &GreenList, id: &str) -> Result<Self> {
        check_id(id)?;
        let mut master = [0u8; 32];
        for (chunk, word) in master.chunks_exact_mut(4).zip(green.prf().key_words()) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let master = SecretKey::from_bytes(master);
        Self::derive(&master, id)
    }

    /// The account id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn prf(&self) -> &Prf {
        &self.prf
    }

    /// The derived key bytes, for the spec's test vectors only.
    #[cfg(test)]
    pub(crate) fn derived_hex(master: &SecretKey, id: &str) -> String {
        hex::encode(derive_bytes(master.bytes(), id))
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey").field("id", &self.id).finish()
    }
}

fn derive_bytes(master: &[u8; 32], id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ACCOUNT_DOMAIN);
    h.update(master);
    // The length prefix makes the encoding unambiguous (ids are at most 128 bytes).
    h.update([id.len() as u8]);
    h.update(id.as_bytes());
    h.finalize().into()
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ACCOUNT_ID_BYTES {
        return Err(Error::BadAccount(format!(
            "an account id must be 1 to {MAX_ACCOUNT_ID_BYTES} bytes, not {}",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::BadAccount(
            "an account id may not contain control characters".into(),
        ));
    }
    Ok(())
}

/// The ids of an accounts file: one per line, surrounding whitespace trimmed, blank lines and
/// lines starting with `#` ignored. A bad id, a duplicate or an empty list is an error that
/// names the line.
pub fn parse_account_list(text: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        check_id(id).map_err(|e| match e {
            Error::BadAccount(reason) => Error::BadAccount(format!("line {}: {reason}", n + 1)),
            other => other,
        })?;
        if !seen.insert(id.to_string()) {
            return Err(Error::BadAccount(format!(
                "line {}: account id listed twice",
                n + 1
            )));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(Error::BadAccount("the list names no account".into()));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scheme;

    #[test]
    fn derivation_depends_on_key_and_id_and_matches_the_green_list_route() {
        let k0 = SecretKey::from_bytes(std::array::from_fn(|i| i as u8));
        let k1 = SecretKey::from_bytes([0xa5; 32]);
        let a = AccountKey::derived_hex(&k0, "alice");
        assert_ne!(a, AccountKey::derived_hex(&k0, "alicf"));
        assert_ne!(a, AccountKey::derived_hex(&k1, "alice"));
        let green = GreenList::new(&k0, Scheme::default(), 100).unwrap();
        let via_green = AccountKey::for_green_list(&green, "alice").unwrap();
        let direct = AccountKey::derive(&k0, "alice").unwrap();
        assert_eq!(via_green.prf().key_words(), direct.prf().key_words());
        assert_eq!(format!("{direct:?}"), "AccountKey { id: \"alice\" }");
    }

    #[test]
    fn bad_ids_and_lists_are_refused() {
        let k = SecretKey::from_bytes([1; 32]);
        assert!(AccountKey::derive(&k, "").is_err());
        assert!(AccountKey::derive(&k, &"x".repeat(129)).is_err());
        assert!(AccountKey::derive(&k, &"x".repeat(128)).is_ok());
        assert!(AccountKey::derive(&k, "a\tb").is_err());
        assert_eq!(
            parse_account_list("# ours\nalice\n\n  bob \r\n").unwrap(),
            vec!["alice", "bob"]
        );
        let dup = parse_account_list("a\nb\na\n").unwrap_err().to_string();
        assert!(dup.contains("line 3") && dup.contains("twice"), "{dup}");
        assert!(parse_account_list("\n# none\n").is_err());
        let long = format!("ok\n{}\n", "y".repeat(200));
        assert!(parse_account_list(&long)
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }
}
#[cfg(test)]
mod spec_vectors {
    use super::*;

    /// The rows of the spec's account table: the derivation column is checked here (the key
    /// bytes are not public API); tests/spec_vectors.rs checks the rest.
    #[test]
    fn derived_keys_match_the_spec() {
        let spec = include_str!("../../../WATERMARK-SPEC.md");
        let table = spec
            .split("### Account test vectors")
            .nth(1)
            .and_then(|t| t.split("## Test vectors").next())
            .unwrap();
        let keys = [
            SecretKey::from_bytes(std::array::from_fn(|i| i as u8)),
            SecretKey::from_bytes([0xa5; 32]),
        ];
        let mut checked = 0;
        for line in table
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| key"))
        {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let key = &keys[cells[0].parse::<usize>().unwrap()];
            let id = if cells[3] == "x × 128" {
                "x".repeat(128)
            } else {
                cells[3].to_string()
            };
            assert_eq!(AccountKey::derived_hex(key, &id), cells[4], "{line}");
            checked += 1;
        }
        assert!(checked >= 10, "{checked} rows");
    }
}
