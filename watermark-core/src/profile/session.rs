//! An opened profile: what every command that scores or generates needs from a profile, checked
//! once, so that no caller opens a key or a tokenizer its own way.

use std::path::Path;
#[cfg(feature = "tokenizers")]
use std::path::PathBuf;
#[cfg(feature = "tokenizers")]
use std::sync::OnceLock;

use super::Profile;
#[cfg(feature = "tokenizers")]
use crate::error::Error;
use crate::error::Result;
use crate::fpr::Fpr;
use crate::green::GreenList;
use crate::key::SecretKey;
#[cfg(feature = "tokenizers")]
use crate::text::TextTokenizer;

/// A validated profile with its green list, built from the key the profile names and checked
/// against its fingerprint; with the `tokenizers` feature also its tokenizer, loaded on first
/// use (most users of the hook never need it) and checked against the profile's fingerprint.
#[derive(Debug)]
pub struct ProfileSession {
    profile: Profile,
    green: GreenList,
    /// A tokenizer file named by the caller, used instead of the profile's recorded path.
    #[cfg(feature = "tokenizers")]
    tokenizer_file: Option<PathBuf>,
    #[cfg(feature = "tokenizers")]
    tokenizer: OnceLock<TextTokenizer>,
}

impl Profile {
    /// Loads the profile at `path` (see [`Profile::load`]), reads its key, checks the key's
    /// fingerprint and builds the green list.
    pub fn open(path: &Path) -> Result<ProfileSession> {
        ProfileSession::new(Profile::load(path)?)
    }
}

impl ProfileSession {
    /// A session over a loaded profile: reads the key it names and checks it.
    pub fn new(profile: Profile) -> Result<Self> {
        let green = profile.green_list()?;
        Ok(Self::from_parts(profile, green))
    }

    /// A session over a loaded profile with its key held elsewhere (a secret store); the key
    /// must be the profile's.
    pub fn with_key(profile: Profile, key: &SecretKey) -> Result<Self> {
        let green = profile.green_list_with(key)?;
        Ok(Self::from_parts(profile, green))
    }

    fn from_parts(profile: Profile, green: GreenList) -> Self {
        ProfileSession {
            profile,
            green,
            #[cfg(feature = "tokenizers")]
            tokenizer_file: None,
            #[cfg(feature = "tokenizers")]
            tokenizer: OnceLock::new(),
        }
    }

    /// The profile as loaded.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The green-list function under the profile's key and scheme.
    pub fn green_list(&self) -> &GreenList {
        &self.green
    }

    /// The profile's default false-positive rate.
    pub fn fpr(&self) -> Fpr {
        self.profile.fpr
    }

    /// Refuses a tokenizer (by fingerprint) that is not the profile's, or any tokenizer when the
    /// profile binds none: for callers that bring their own, such as a model's.
    pub fn check_tokenizer(&self, fingerprint: &str) -> Result<()> {
        self.profile.check_tokenizer(fingerprint)
    }
}

#[cfg(feature = "tokenizers")]
impl ProfileSession {
    /// Reads text with the tokenizer at `path` instead of the one the profile records; it must
    /// still be the profile's tokenizer. `None` keeps the recorded one.
    pub fn with_tokenizer_file(mut self, path: Option<&Path>) -> Self {
        self.tokenizer_file = path.map(Path::to_path_buf);
        self.tokenizer = OnceLock::new();
        self
    }

    /// The tokenizer file text is read with: the one named by
    /// [`ProfileSession::with_tokenizer_file`], else the profile's recorded path, resolved
    /// against the profile's directory.
    pub fn tokenizer_path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.tokenizer_file {
            return Ok(path.clone());
        }
        let binding = self.profile.tokenizer.as_ref().ok_or(Error::NoTokenizer)?;
        let path = binding.path.as_ref().ok_or(Error::NoTokenizerPath)?;
        Ok(self.profile.resolve(path))
    }

    /// The tokenizer, loaded from [`ProfileSession::tokenizer_path`] on the first call and kept.
    /// A file whose fingerprint is not the profile's is refused with an [`Error::File`] naming
    /// it; so is any file when the profile binds no tokenizer.
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        if let Some(tokenizer) = self.tokenizer.get() {
            return Ok(tokenizer);
        }
        let path = self.tokenizer_path()?;
        let tokenizer = TextTokenizer::from_file(&path)?;
        self.profile
            .check_tokenizer(tokenizer.fingerprint())
            .map_err(|e| Error::File {
                path,
                source: Box::new(e),
            })?;
        // Another thread may have loaded it meanwhile: either is the same tokenizer.
        Ok(self.tokenizer.get_or_init(|| tokenizer))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::Error;
    use crate::{Scheme, SecretKey};

    pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = crate::files::private_test_dir(&format!("session-{name}"));
        dir
    }

    #[test]
    fn opens_with_the_checked_key_and_refuses_another() {
        let dir = temp_dir("key");
        let key = SecretKey::generate().unwrap();
        key.write_new(&dir.join("k.key")).unwrap();
        let mut profile = Profile::new("k.key".into(), &key, Scheme::default(), 100).unwrap();
        profile.fpr = Fpr::new(0.01).unwrap();
        profile.save(&dir.join("p.toml")).unwrap();

        let session = Profile::open(&dir.join("p.toml")).unwrap();
        assert_eq!(session.green_list().key_fingerprint(), key.fingerprint());
        assert_eq!(session.green_list().vocab_size(), 100);
        assert_eq!(session.fpr().get(), 0.01);
        assert_eq!(session.profile().key_fingerprint, key.fingerprint());
        let held = ProfileSession::with_key(session.profile().clone(), &key).unwrap();
        assert_eq!(held.green_list().key_fingerprint(), key.fingerprint());

        let other = SecretKey::from_bytes([9; 32]);
        let err = ProfileSession::with_key(session.profile().clone(), &other).unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
        std::fs::remove_file(dir.join("k.key")).unwrap();
        assert!(matches!(
            Profile::open(&dir.join("p.toml")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(feature = "tokenizers")]
    pub(crate) mod tokenizer {
        use super::*;
        use crate::profile::TokenizerBinding;

        /// A word-level tokenizer.json over `words`, plus an unknown-word token.
        pub(crate) fn word_level(words: &[&str]) -> String {
            let vocab: Vec<String> = std::iter::once("[UNK]")
                .chain(words.iter().copied())
                .enumerate()
                .map(|(i, w)| format!("{w:?}: {i}"))
                .collect();
            format!(
                r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}},
                "post_processor": null, "decoder": null,
                "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "[UNK]"}}}}"#,
                vocab.join(", ")
            )
        }

        fn session_in(dir: &Path, binding: Option<TokenizerBinding>) -> ProfileSession {
            let key = SecretKey::from_bytes([4; 32]);
            let mut profile = Profile::new("k.key".into(), &key, Scheme::default(), 4).unwrap();
            profile.tokenizer = binding;
            profile.save(&dir.join("p.toml")).unwrap();
            let profile = Profile::load(&dir.join("p.toml")).unwrap();
            ProfileSession::with_key(profile, &key).unwrap()
        }

        #[test]
        fn loads_the_bound_tokenizer_once_or_the_one_named() {
            let dir = temp_dir("tok");
            std::fs::write(dir.join("tokenizer.json"), word_level(&["a", "b", "c"])).unwrap();
            std::fs::write(dir.join("other.json"), word_level(&["a", "b", "d"])).unwrap();
            let bytes = std::fs::read(dir.join("tokenizer.json")).unwrap();
            let binding = TokenizerBinding {
                fingerprint: TextTokenizer::from_bytes(&bytes)
                    .unwrap()
                    .fingerprint()
                    .into(),
                path: Some("tokenizer.json".into()),
            };
            let session = session_in(&dir, Some(binding.clone()));
            assert_eq!(
                session.tokenizer_path().unwrap(),
                dir.join("tokenizer.json")
            );
            assert_eq!(
                session.tokenizer().unwrap().encode("a c b").unwrap(),
                [1, 3, 2]
            );
            // Cached: the file is not read again.
            std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
            assert!(session.tokenizer().is_ok());

            // A file named by the caller must still be the profile's tokenizer.
            let other = dir.join("other.json");
            let session = session.with_tokenizer_file(Some(&other));
            assert_eq!(session.tokenizer_path().unwrap(), other);
            let err = session.tokenizer().unwrap_err();
            assert!(
                matches!(&err, Error::File { path, source }
                    if *path == other && matches!(**source, Error::TokenizerMismatch { .. })),
                "{err}"
            );
            assert!(err
                .to_string()
                .starts_with(&format!("{}: tokenizer fingerprint", other.display())));

            // A binding by fingerprint only needs a file named.
            let bare = TokenizerBinding {
                path: None,
                ..binding
            };
            let session = session_in(&dir, Some(bare));
            assert!(matches!(session.tokenizer(), Err(Error::NoTokenizerPath)));
            std::fs::remove_dir_all(&dir).unwrap();
        }

        #[test]
        fn a_profile_without_a_tokenizer_reads_no_text() {
            let dir = temp_dir("none");
            std::fs::write(dir.join("t.json"), word_level(&["a"])).unwrap();
            let session = session_in(&dir, None);
            assert!(matches!(session.tokenizer(), Err(Error::NoTokenizer)));
            let session = session.with_tokenizer_file(Some(&dir.join("t.json")));
            let err = session.tokenizer().unwrap_err();
            assert!(
                matches!(&err, Error::File { source, .. } if matches!(**source, Error::NoTokenizer)),
                "{err}"
            );
            let session = session.with_tokenizer_file(Some(&dir.join("missing.json")));
            assert!(matches!(session.tokenizer(), Err(Error::Io { .. })));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
