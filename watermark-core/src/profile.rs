//! Profiles: one file that binds everything generation and detection must agree on.
//!
//! A detector run with other parameters than the generator (another γ, window, key or
//! tokenizer) returns a score that means nothing; that is the most reported failure of watermark
//! tools. So the profile records the key's and the tokenizer's fingerprints, and loading checks
//! both instead of trusting the caller.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::DEFAULT_FPR;
use crate::error::{Error, Result};
use crate::green::{GreenList, Scheme, SPEC_VERSION};
use crate::key::SecretKey;

/// The tokenizer a profile is bound to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerBinding {
    /// Fingerprint of the tokenizer (see [`file_fingerprint`]).
    pub fingerprint: String,
    /// Where the tokenizer was found when the profile was made (relative to the profile's
    /// directory, or absolute); used when the caller names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// A watermark profile, as stored in TOML or JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The green-list spec version; must equal [`SPEC_VERSION`].
    pub spec: String,
    /// Key file, relative to the profile's directory or absolute.
    pub key_file: PathBuf,
    /// Fingerprint of that key; a different key is refused.
    pub key_fingerprint: String,
    /// Tokens in the model's vocabulary (logits rows may be longer, never shorter).
    pub vocab_size: u32,
    /// The scheme and its parameters.
    pub scheme: Scheme,
    /// The tokenizer, when text (not only token ids) is to be detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerBinding>,
    /// Default false-positive rate of detection verdicts.
    #[serde(default = "default_fpr")]
    pub fpr: f64,
    /// Directory the profile was loaded from; relative paths resolve against it.
    #[serde(skip)]
    base_dir: PathBuf,
}

fn default_fpr() -> f64 {
    DEFAULT_FPR
}

impl Profile {
    /// A new profile for `key` (stored at `key_file`) with the given scheme and vocabulary.
    pub fn new(
        key_file: PathBuf,
        key: &SecretKey,
        scheme: Scheme,
        vocab_size: u32,
    ) -> Result<Self> {
        scheme.validate()?;
        Ok(Profile {
            spec: SPEC_VERSION.to_string(),
            key_file,
            key_fingerprint: key.fingerprint(),
            vocab_size,
            scheme,
            tokenizer: None,
            fpr: DEFAULT_FPR,
            base_dir: PathBuf::new(),
        })
    }

    /// Reads a profile: `.json` files as JSON, anything else as TOML. Checks the spec version
    /// and the scheme; the key is checked by [`Profile::green_list`].
    pub fn load(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let malformed = |reason: String| Error::MalformedProfile {
            path: path.to_path_buf(),
            reason,
        };
        let text = String::from_utf8(raw).map_err(|_| malformed("not UTF-8 text".into()))?;
        let mut profile: Profile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| malformed(e.message().to_string()))?
        };
        if profile.spec != SPEC_VERSION {
            return Err(Error::SpecMismatch {
                found: profile.spec,
                expected: SPEC_VERSION,
            });
        }
        profile.scheme.validate()?;
        if !(profile.fpr > 0.0 && profile.fpr < 1.0) {
            return Err(malformed(format!("fpr {} must lie in (0, 1)", profile.fpr)));
        }
        profile.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(profile)
    }

    /// Writes the profile; `.json` paths as JSON, anything else as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = if path.extension().is_some_and(|e| e == "json") {
            serde_json::to_string_pretty(self)
                .map_err(|e| Error::InvalidParameter(e.to_string()))?
        } else {
            toml::to_string(self).map_err(|e| Error::InvalidParameter(e.to_string()))?
        };
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// Resolves a path stored in the profile against the profile's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Loads the key, checks it against the profile, and builds the green-list function.
    pub fn green_list(&self) -> Result<GreenList> {
        let key = SecretKey::read(&self.resolve(&self.key_file))?;
        self.green_list_with(&key)
    }

    /// Builds the green-list function with a key held elsewhere (a secret store), checking
    /// that it is the profile's key.
    pub fn green_list_with(&self, key: &SecretKey) -> Result<GreenList> {
        let found = key.fingerprint();
        if found != self.key_fingerprint {
            return Err(Error::KeyMismatch {
                found,
                expected: self.key_fingerprint.clone(),
            });
        }
        GreenList::new(key, self.scheme.clone(), self.vocab_size)
    }

    /// Refuses a tokenizer whose fingerprint is not the profile's.
    pub fn check_tokenizer(&self, fingerprint: &str) -> Result<()> {
        let binding = self.tokenizer.as_ref().ok_or(Error::NoTokenizer)?;
        if binding.fingerprint != fingerprint {
            return Err(Error::TokenizerMismatch {
                found: fingerprint.to_string(),
                expected: binding.fingerprint.clone(),
            });
        }
        Ok(())
    }
}

/// Fingerprint of a file's exact bytes: the first 16 hex digits of its SHA-256.
pub fn file_fingerprint(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tm-profile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trips_in_toml_and_json_and_checks_the_key() {
        let dir = temp_dir("rt");
        let key = SecretKey::generate().unwrap();
        key.write_new(&dir.join("a.key")).unwrap();
        let mut p = Profile::new("a.key".into(), &key, Scheme::default(), 500).unwrap();
        p.tokenizer = Some(TokenizerBinding {
            fingerprint: "00ff".into(),
            path: None,
        });
        for name in ["p.toml", "p.json"] {
            p.save(&dir.join(name)).unwrap();
            let q = Profile::load(&dir.join(name)).unwrap();
            assert_eq!(q.scheme, p.scheme);
            assert_eq!(q.tokenizer, p.tokenizer);
            assert_eq!(q.green_list().unwrap().key_fingerprint(), key.fingerprint());
            assert!(matches!(
                q.check_tokenizer("00fe"),
                Err(Error::TokenizerMismatch { .. })
            ));
            q.check_tokenizer("00ff").unwrap();
        }
        // A different key at the same path is refused by fingerprint.
        std::fs::remove_file(dir.join("a.key")).unwrap();
        SecretKey::generate()
            .unwrap()
            .write_new(&dir.join("a.key"))
            .unwrap();
        let q = Profile::load(&dir.join("p.toml")).unwrap();
        assert!(matches!(q.green_list(), Err(Error::KeyMismatch { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_profiles_are_refused_with_reasons() {
        let dir = temp_dir("bad");
        let cases = [
            ("garbage.toml", "this is = = not toml"),
            ("unknown.toml", "spec = \"tracemark-green-v1\"\nkey_file = \"k\"\nkey_fingerprint = \"x\"\nvocab_size = 5\nbogus = 1\n[scheme]\nseeding = \"previous\"\nwidth = 2\ngamma = 0.25\ndelta = 2.0\n"),
            ("spec.toml", "spec = \"v0\"\nkey_file = \"k\"\nkey_fingerprint = \"x\"\nvocab_size = 5\n[scheme]\nseeding = \"previous\"\nwidth = 2\ngamma = 0.25\ndelta = 2.0\n"),
            ("gamma.toml", "spec = \"tracemark-green-v1\"\nkey_file = \"k\"\nkey_fingerprint = \"x\"\nvocab_size = 5\n[scheme]\nseeding = \"previous\"\nwidth = 2\ngamma = 1.5\ndelta = 2.0\n"),
        ];
        for (name, body) in cases {
            std::fs::write(dir.join(name), body).unwrap();
            let err = Profile::load(&dir.join(name)).unwrap_err();
            assert!(!err.to_string().is_empty(), "{name}");
        }
        assert!(matches!(
            Profile::load(&dir.join("missing.toml")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
