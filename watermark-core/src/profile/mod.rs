//! Profiles: one file that binds everything generation and detection must agree on.
//!
//! A detector run with other parameters than the generator (another γ, window, key or
//! tokenizer) returns a score that means nothing; that is the most reported failure of watermark
//! tools. So the profile records the key's and the tokenizer's fingerprints, and loading checks
//! both instead of trusting the caller. [`Profile::open`] does all of it at once and returns a
//! [`ProfileSession`]; [`Profile::create`] writes a new key and profile.

mod create;
mod session;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fpr::{Fpr, DEFAULT_FPR};
use crate::green::{GreenList, Scheme, SPEC_VERSION};
use crate::key::SecretKey;

#[cfg(feature = "tokenizers")]
pub use create::TOKENIZER_FILE;
pub use create::{CreatedProfile, NewProfile, ProfileFormat, TokenizerSource, KEY_FILE};
pub use session::ProfileSession;

/// The tokenizer a profile is bound to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a tokenizer table (fingerprint, and optionally path)"
)]
pub struct TokenizerBinding {
    /// Fingerprint of the tokenizer: the first 16 hex digits of the SHA-256 of its file.
    pub fingerprint: String,
    /// Where the tokenizer was found when the profile was made (relative to the profile's
    /// directory, or absolute); used when the caller names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// A watermark profile, as stored in TOML or JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerBinding>,
    /// Default false-positive rate of detection verdicts.
    pub fpr: Fpr,
    /// Directory the profile was loaded from; relative paths resolve against it.
    #[serde(skip)]
    base_dir: PathBuf,
}

/// A profile file as written: [`Profile`]'s fields with the false-positive rate not yet checked,
/// so that a bad rate is reported as the file's fault, like every other check of [`Profile::load`].
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a profile (spec, key_file, key_fingerprint, vocab_size, scheme)"
)]
struct StoredProfile {
    spec: String,
    key_file: PathBuf,
    key_fingerprint: String,
    vocab_size: u32,
    scheme: Scheme,
    #[serde(default)]
    tokenizer: Option<TokenizerBinding>,
    #[serde(default = "default_fpr")]
    fpr: f64,
}

fn default_fpr() -> f64 {
    DEFAULT_FPR
}

/// Largest profile file read: a profile is well under a kilobyte.
const MAX_PROFILE_BYTES: u64 = 1 << 20;

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
            fpr: Fpr::DEFAULT,
            base_dir: PathBuf::new(),
        })
    }

    /// Reads a profile: `.json` files as JSON, anything else as TOML. Checks the spec version,
    /// the scheme and the false-positive rate; the key is checked by [`Profile::green_list`].
    pub fn load(path: &Path) -> Result<Self> {
        let raw = crate::files::read_limited(path, MAX_PROFILE_BYTES, "profile")?;
        Self::parse(&raw, path)
    }

    /// A profile from the bytes of the file at `path` (its extension picks JSON or TOML, its
    /// directory anchors the relative key and tokenizer paths); nothing is read from disk.
    /// The checks are [`Profile::load`]'s.
    pub fn parse(raw: &[u8], path: &Path) -> Result<Self> {
        let malformed = |reason: String| Error::MalformedProfile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(raw).map_err(|_| malformed("not UTF-8 text".into()))?;
        // Editors on some systems start UTF-8 files with a byte-order mark; it is not content.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let stored: StoredProfile = if is_json(path) {
            serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| malformed(e.message().to_string()))?
        };
        if stored.spec != SPEC_VERSION {
            return Err(Error::SpecMismatch {
                found: stored.spec,
                expected: SPEC_VERSION,
            });
        }
        stored.scheme.validate()?;
        let fpr = Fpr::new(stored.fpr)
            .map_err(|_| malformed(format!("fpr {} must lie in (0, 1)", stored.fpr)))?;
        Ok(Profile {
            spec: stored.spec,
            key_file: stored.key_file,
            key_fingerprint: stored.key_fingerprint,
            vocab_size: stored.vocab_size,
            scheme: stored.scheme,
            tokenizer: stored.tokenizer,
            fpr,
            base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        })
    }

    /// Writes the profile; `.json` paths as JSON, anything else as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_as(self, path)
    }

    /// Resolves a path stored in the profile against the profile's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve_in(&self.base_dir, path)
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

/// Whether a profile path is read and written as JSON (else TOML).
/// Whether a profile path is read and written as JSON (else TOML).
pub(crate) fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// Writes a profile of either scheme family: `.json` paths as JSON, anything else as TOML.
pub(crate) fn save_as(profile: &impl serde::Serialize, path: &Path) -> Result<()> {
    let text = if is_json(path) {
        serde_json::to_string_pretty(profile).map_err(|e| Error::InvalidParameter(e.to_string()))?
    } else {
        toml::to_string(profile).map_err(|e| Error::InvalidParameter(e.to_string()))?
    };
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A path stored in a profile, resolved against the profile's directory `base`.
pub(crate) fn resolve_in(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = crate::files::private_test_dir(&format!("profile-{name}"));
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

    /// A profile as `tracemark keygen` has always written it.
    const PROFILE_TOML: &str = "spec = \"tracemark-green-v1\"
key_file = \"tracemark.key\"
key_fingerprint = \"5d1e8b27aa4fc3e0\"
vocab_size = 49152
fpr = 1e-6

[scheme]
seeding = \"self-seeded\"
width = 3
gamma = 0.25
delta = 2.0

[tokenizer]
fingerprint = \"0123456789abcdef\"
path = \"tokenizer.json\"
";

    #[test]
    fn existing_profile_files_load_and_save_unchanged() {
        let dir = temp_dir("format");
        std::fs::write(dir.join("profile.toml"), PROFILE_TOML).unwrap();
        let p = Profile::load(&dir.join("profile.toml")).unwrap();
        assert_eq!(p.fpr, Fpr::DEFAULT);
        assert_eq!(p.scheme.seeding, crate::Seeding::SelfSeeded);
        assert_eq!(
            p.resolve(Path::new("tokenizer.json")),
            dir.join("tokenizer.json")
        );
        p.save(&dir.join("again.toml")).unwrap();
        let again = std::fs::read_to_string(dir.join("again.toml")).unwrap();
        assert_eq!(Profile::load(&dir.join("again.toml")).unwrap(), p);
        p.save(&dir.join("p.json")).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("p.json")).unwrap()).unwrap();
        assert_eq!(json["fpr"], 1e-6);
        assert_eq!(json["scheme"]["seeding"], "self-seeded");
        assert!(
            again.starts_with("spec = \"tracemark-green-v1\"\n"),
            "{again}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_devices_are_refused() {
        let dir = temp_dir("bom");
        let key = SecretKey::generate().unwrap();
        let p = Profile::new("a.key".into(), &key, Scheme::default(), 500).unwrap();
        for name in ["p.toml", "p.json"] {
            p.save(&dir.join(name)).unwrap();
            let mut bytes = "\u{feff}".as_bytes().to_vec();
            bytes.extend(std::fs::read(dir.join(name)).unwrap());
            std::fs::write(dir.join(name), bytes).unwrap();
            assert_eq!(Profile::load(&dir.join(name)).unwrap().scheme, p.scheme);
        }
        let err = Profile::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
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
        // A bad rate is the file's fault, in either format, without a parser position.
        let body = PROFILE_TOML.replace("fpr = 1e-6", "fpr = 2.0");
        std::fs::write(dir.join("fpr.toml"), body).unwrap();
        let json = r#"{"spec": "tracemark-green-v1", "key_file": "k", "key_fingerprint": "x",
            "vocab_size": 5, "fpr": 0, "scheme": {"seeding": "previous", "width": 2,
            "gamma": 0.25, "delta": 2.0}}"#;
        std::fs::write(dir.join("fpr.json"), json).unwrap();
        for (name, rate) in [("fpr.toml", "2"), ("fpr.json", "0")] {
            let path = dir.join(name);
            let err = Profile::load(&path).unwrap_err().to_string();
            let want = format!(
                "{}: malformed profile: fpr {rate} must lie in (0, 1)",
                path.display()
            );
            assert_eq!(err, want);
        }
        assert!(matches!(
            Profile::load(&dir.join("missing.toml")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        // Refusals name what the file should hold, never a type of ours.
        let head = "spec = \"tracemark-green-v1\"\nkey_file = \"k\"\nkey_fingerprint = \"x\"\nvocab_size = 5\n";
        for (name, text, want) in [
            (
                "p.toml",
                format!("{head}scheme = \"x\"\n"),
                "a scheme table",
            ),
            ("p.json", r#"{"scheme": 1}"#.into(), "a scheme table"),
            ("p.json", "7".into(), "a profile (spec,"),
            (
                "p.toml",
                format!("{head}tokenizer = 3\n"),
                "a tokenizer table",
            ),
        ] {
            let err = Profile::parse(text.as_bytes(), Path::new(name))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want) && !err.contains("struct"),
                "{text}: {err}"
            );
        }
    }
}
