//! Key commitments: a public file that binds a secret key and the scheme's parameters without
//! revealing the key, so that a key revealed later provably existed, unchanged, when the file
//! was published. Hiding: the key is hashed with a fresh random 32-byte salt. Binding: SHA-256
//! collision resistance. The bytes hashed are specified in the spec's "Key commitments".

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::EvidenceError;
use crate::green::Scheme;
use crate::key::SecretKey;
use crate::profile::Profile;

/// Names the file format; a commitment file starts with it.
pub const COMMITMENT_FORMAT: &str = "tracemark-commitment-v1";
/// Domain separation: no other hash of the key can equal a commitment.
pub const COMMITMENT_DOMAIN: &[u8] = b"tracemark/key-commitment/v1";

/// Largest commitment file read (one is about 600 bytes).
const MAX_COMMITMENT_BYTES: u64 = 64 * 1024;

/// A profile's public parameters: everything a verifier must know besides the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicParameters {
    /// The green-list spec version.
    pub spec: String,
    /// The scheme and its parameters.
    pub scheme: Scheme,
    /// Tokens in the vocabulary.
    pub vocab_size: u32,
    /// Fingerprint of the tokenizer the profile is bound to, if any.
    pub tokenizer_fingerprint: Option<String>,
    /// The key's public fingerprint.
    pub key_fingerprint: String,
}

impl PublicParameters {
    /// The public parameters of `profile`.
    pub fn of(profile: &Profile) -> Self {
        PublicParameters {
            spec: profile.spec.clone(),
            scheme: profile.scheme.clone(),
            vocab_size: profile.vocab_size,
            tokenizer_fingerprint: profile.tokenizer.as_ref().map(|t| t.fingerprint.clone()),
            key_fingerprint: profile.key_fingerprint.clone(),
        }
    }

    /// Each parameter as `name=value`, in the spec's order: what the commitment hashes and
    /// what differences are reported in.
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("spec", self.spec.clone()),
            ("seeding", self.scheme.seeding.name().to_string()),
            ("width", self.scheme.width.to_string()),
            ("gamma", self.scheme.gamma.to_string()),
            ("delta", self.scheme.delta.to_string()),
            ("vocab_size", self.vocab_size.to_string()),
            (
                "tokenizer",
                self.tokenizer_fingerprint
                    .clone()
                    .unwrap_or_else(|| "none".to_string()),
            ),
            ("key_fingerprint", self.key_fingerprint.clone()),
        ]
    }

    /// The first parameter that differs from `other`'s, as a sentence; `None` when all agree.
    pub fn first_difference(&self, other: &PublicParameters, names: [&str; 2]) -> Option<String> {
        self.lines()
            .into_iter()
            .zip(other.lines())
            .find(|(a, b)| a.1 != b.1)
            .map(|((name, a), (_, b))| {
                format!("{name} differs: {} {a}, {} {b}", names[0], names[1])
            })
    }
}

/// A key commitment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commitment {
    /// [`COMMITMENT_FORMAT`].
    pub format: String,
    /// What the key is committed together with.
    pub parameters: PublicParameters,
    /// When the commitment was made, UTC (`YYYY-MM-DDTHH:MM:SSZ`); hashed, so it cannot be
    /// moved later.
    pub created: String,
    /// The random salt, 64 hex digits: public, so that the commitment can be opened.
    pub salt: String,
    /// SHA-256 of the spec's commitment message, 64 hex digits.
    pub commitment: String,
}

impl Commitment {
    /// Commits to `key` under `parameters` with a fresh random salt.
    pub fn new(
        parameters: PublicParameters,
        key: &SecretKey,
        created: String,
    ) -> crate::Result<Self> {
        use rand_core::TryRngCore;
        let mut salt = [0u8; 32];
        rand_core::OsRng
            .try_fill_bytes(&mut salt)
            .map_err(|e| crate::Error::Rng(e.to_string()))?;
        Ok(Self::with_salt(parameters, key, created, salt))
    }

    /// Commits with a given salt: the spec's test vectors; use [`Commitment::new`] otherwise.
    pub fn with_salt(
        parameters: PublicParameters,
        key: &SecretKey,
        created: String,
        salt: [u8; 32],
    ) -> Self {
        let digest = digest(&parameters, &created, &salt, key);
        Commitment {
            format: COMMITMENT_FORMAT.to_string(),
            parameters,
            created,
            salt: hex::encode(salt),
            commitment: hex::encode(digest),
        }
    }

    /// The commitment's statement: the lines hashed after the domain tag, salt and key.
    pub fn statement(parameters: &PublicParameters, created: &str) -> String {
        let mut text = String::new();
        for (name, value) in parameters.lines() {
            text.push_str(&format!("{name}={value}\n"));
        }
        text.push_str(&format!("created={created}\n"));
        text
    }

    /// Parses a commitment file (`path` names it in errors). Checks the format, the hex fields
    /// and the scheme; not yet the key.
    pub fn parse(raw: &[u8], path: &Path) -> Result<Self, EvidenceError> {
        let malformed = |reason: String| EvidenceError::Malformed {
            path: path.to_path_buf(),
            what: "commitment",
            reason,
        };
        let commitment: Commitment =
            serde_json::from_slice(raw).map_err(|e| malformed(e.to_string()))?;
        if commitment.format != COMMITMENT_FORMAT {
            return Err(malformed(format!(
                "format is {:?}, expected {COMMITMENT_FORMAT:?}",
                commitment.format
            )));
        }
        for (name, value) in [
            ("salt", &commitment.salt),
            ("commitment", &commitment.commitment),
        ] {
            if value.len() != 64 || hex::decode(value).is_err() {
                return Err(malformed(format!("{name} is not 64 hex digits")));
            }
        }
        commitment
            .parameters
            .scheme
            .validate()
            .map_err(|e| malformed(e.to_string()))?;
        Ok(commitment)
    }

    /// Reads and parses the commitment file at `path`.
    pub fn read(path: &Path) -> Result<Self, EvidenceError> {
        let raw =
            crate::files::read_limited(path, MAX_COMMITMENT_BYTES, "commitment").map_err(|e| {
                EvidenceError::Malformed {
                    path: path.to_path_buf(),
                    what: "commitment",
                    reason: e.to_string(),
                }
            })?;
        Self::parse(&raw, path)
    }

    /// Opens the commitment with a revealed key and the profile's public parameters: the key
    /// must be the committed one, every parameter the committed one, and the hash must match.
    pub fn open(&self, profile: &PublicParameters, key: &SecretKey) -> Result<(), EvidenceError> {
        let revealed = key.fingerprint();
        if revealed != self.parameters.key_fingerprint {
            return Err(EvidenceError::WrongKey {
                committed: self.parameters.key_fingerprint.clone(),
                revealed,
            });
        }
        if let Some(difference) = self
            .parameters
            .first_difference(profile, ["the commitment has", "the profile has"])
        {
            return Err(EvidenceError::Tampered(format!(
                "the profile is not the committed one: {difference}"
            )));
        }
        let mut salt = [0u8; 32];
        hex::decode_to_slice(&self.salt, &mut salt)
            .map_err(|_| EvidenceError::Tampered("the salt is not 64 hex digits".into()))?;
        let expected = hex::encode(digest(&self.parameters, &self.created, &salt, key));
        if expected != self.commitment.to_ascii_lowercase() {
            return Err(EvidenceError::Tampered(
                "the commitment does not open with this key: its parameters, creation time, \
                 salt or hash were altered after it was made"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// The commitment file's text: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// SHA-256(domain ‖ salt ‖ key ‖ statement).
fn digest(
    parameters: &PublicParameters,
    created: &str,
    salt: &[u8; 32],
    key: &SecretKey,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMITMENT_DOMAIN);
    h.update(salt);
    h.update(key.bytes());
    h.update(Commitment::statement(parameters, created).as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::green::SPEC_VERSION;

    fn parameters(key: &SecretKey) -> PublicParameters {
        PublicParameters {
            spec: SPEC_VERSION.to_string(),
            scheme: Scheme::default(),
            vocab_size: 49_152,
            tokenizer_fingerprint: Some("0123456789abcdef".into()),
            key_fingerprint: key.fingerprint(),
        }
    }

    #[test]
    fn opens_with_the_key_and_names_each_kind_of_failure() {
        let key = SecretKey::from_bytes([7; 32]);
        let c = Commitment::new(parameters(&key), &key, "2026-11-30T00:00:00Z".into()).unwrap();
        let path = Path::new("c.json");
        let parsed = Commitment::parse(c.to_json().as_bytes(), path).unwrap();
        assert_eq!(parsed, c);
        parsed.open(&parameters(&key), &key).unwrap();

        let other = SecretKey::from_bytes([8; 32]);
        let err = c.open(&parameters(&other), &other).unwrap_err();
        assert!(matches!(err, EvidenceError::WrongKey { .. }), "{err}");

        let mut profile = parameters(&key);
        profile.scheme.gamma = 0.5;
        let err = c.open(&profile, &key).unwrap_err();
        assert!(err.to_string().contains("gamma differs"), "{err}");

        let mut altered = c.clone();
        altered.created = "2026-01-01T00:00:00Z".into();
        let err = altered.open(&parameters(&key), &key).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");

        for bad in [&b"{}"[..], b"not json", &c.to_json().as_bytes()[..40]] {
            let err = Commitment::parse(bad, path).unwrap_err();
            assert!(matches!(err, EvidenceError::Malformed { .. }), "{err}");
        }
        let wrong_format = c.to_json().replace(COMMITMENT_FORMAT, "other-v9");
        assert!(Commitment::parse(wrong_format.as_bytes(), path).is_err());
    }

    #[test]
    fn salts_hide_the_key_and_the_file_never_holds_it() {
        let key = SecretKey::from_bytes([7; 32]);
        let a = Commitment::new(parameters(&key), &key, "t".into()).unwrap();
        let b = Commitment::new(parameters(&key), &key, "t".into()).unwrap();
        assert_ne!(a.commitment, b.commitment);
        assert!(!a.to_json().contains(&hex::encode([7u8; 32])));
    }
}
