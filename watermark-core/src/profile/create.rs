//! A new key and the profile that binds it, written into one directory.
//!
//! Everything that can be refused (the scheme, the tokenizer, the vocabulary) is checked before
//! the key is written, and nothing is ever overwritten: losing a key loses every watermark made
//! with it.

use std::path::{Path, PathBuf};

use super::{Profile, TokenizerBinding};
use crate::error::{Error, Result};
use crate::green::Scheme;
use crate::key::SecretKey;
#[cfg(feature = "tokenizers")]
use crate::text::TextTokenizer;

/// File name of the key inside a new profile's directory; the profile refers to it relatively.
pub const KEY_FILE: &str = "tracemark.key";
/// File name of a tokenizer saved beside a new profile ([`TokenizerSource::Save`]).
#[cfg(feature = "tokenizers")]
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where the tokenizer of a new profile comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TokenizerSource {
    /// None: the profile detects token ids only, over [`NewProfile::vocab_size`] tokens.
    None,
    /// An existing `tokenizer.json`, bound by its absolute path.
    #[cfg(feature = "tokenizers")]
    File(PathBuf),
    /// The bytes of a `tokenizer.json` (rebuilt from a model file, say), saved beside the profile
    /// as [`TOKENIZER_FILE`] and bound by that relative name, so the directory can move. A file
    /// already there is kept if it is this same tokenizer, and refused otherwise.
    #[cfg(feature = "tokenizers")]
    Save {
        /// The file's bytes.
        json: Vec<u8>,
        /// Where the bytes came from, for error messages.
        origin: PathBuf,
    },
}

/// How a new profile is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProfileFormat {
    /// `profile.toml`.
    #[default]
    Toml,
    /// `profile.json`.
    Json,
}

impl ProfileFormat {
    /// The profile's file name in its directory.
    pub fn file_name(self) -> &'static str {
        match self {
            ProfileFormat::Toml => "profile.toml",
            ProfileFormat::Json => "profile.json",
        }
    }
}

/// What [`Profile::create`] writes.
#[derive(Clone, Debug)]
pub struct NewProfile {
    /// The scheme and its parameters.
    pub scheme: Scheme,
    /// Tokens in the vocabulary: required without a tokenizer, and when given with one it must
    /// be the tokenizer's.
    pub vocab_size: Option<u32>,
    /// The tokenizer to bind.
    pub tokenizer: TokenizerSource,
    /// TOML or JSON.
    pub format: ProfileFormat,
}

/// A profile [`Profile::create`] wrote.
#[derive(Clone, Debug)]
pub struct CreatedProfile {
    /// The profile, as loading the file would return it.
    pub profile: Profile,
    /// The profile file.
    pub profile_path: PathBuf,
    /// The secret key (mode 0600 on Unix).
    pub key_path: PathBuf,
}

const KEY_EXISTS: &str =
    "already exists; refusing to overwrite a key (losing it loses every watermark made with it)";
const PROFILE_EXISTS: &str = "already exists; refusing to overwrite a profile";

impl Profile {
    /// Draws a new key and writes it with its profile into `dir` (created if missing): the key
    /// as [`KEY_FILE`], the profile as `profile.toml` or `profile.json`, and a saved tokenizer
    /// as `tokenizer.json`. Refuses to overwrite any of them.
    pub fn create(dir: &Path, new: NewProfile) -> Result<CreatedProfile> {
        new.scheme.validate()?;
        let key_path = dir.join(KEY_FILE);
        let profile_path = dir.join(new.format.file_name());
        // Refused before anything is written, a saved tokenizer included.
        refuse_existing(&key_path, KEY_EXISTS)?;
        refuse_existing(&profile_path, PROFILE_EXISTS)?;
        let (vocab_size, binding) = bind_tokenizer(dir, new.vocab_size, new.tokenizer)?;
        let key = SecretKey::generate()?;
        let mut profile = Profile::new(KEY_FILE.into(), &key, new.scheme, vocab_size)?;
        profile.tokenizer = binding;
        // Builds the green list once: checks the vocabulary size before the key is written.
        profile.green_list_with(&key)?;

        create_dir(dir)?;
        refuse_existing(&key_path, KEY_EXISTS)?;
        refuse_existing(&profile_path, PROFILE_EXISTS)?;
        key.write_new(&key_path)?;
        profile
            .save(&profile_path)
            .and_then(|()| set_mode(&profile_path, 0o644))
            .map_err(|e| Error::ProfileNotSaved {
                key_path: key_path.clone(),
                source: Box::new(e),
            })?;
        profile.base_dir = dir.to_path_buf();
        Ok(CreatedProfile {
            profile,
            profile_path,
            key_path,
        })
    }
}

/// The vocabulary size and tokenizer binding of a new profile.
fn bind_tokenizer(
    dir: &Path,
    vocab_size: Option<u32>,
    source: TokenizerSource,
) -> Result<(u32, Option<TokenizerBinding>)> {
    #[cfg(not(feature = "tokenizers"))]
    let _ = dir;
    match source {
        TokenizerSource::None => {
            let n = vocab_size.ok_or_else(|| {
                Error::InvalidParameter(
                    "a profile without a tokenizer needs a vocabulary size".into(),
                )
            })?;
            Ok((n, None))
        }
        #[cfg(feature = "tokenizers")]
        TokenizerSource::File(path) => {
            let tokenizer = TextTokenizer::from_file(&path)?;
            check_vocab_size(vocab_size, &tokenizer, &path)?;
            let absolute = std::fs::canonicalize(&path).map_err(|source| Error::FileOp {
                path: path.clone(),
                action: "resolve the path",
                source,
            })?;
            if absolute.to_str().is_none() {
                // Profiles are TOML or JSON text: such a path could not be saved.
                return Err(Error::Refused {
                    path,
                    reason: "the tokenizer's path is not valid UTF-8",
                });
            }
            Ok((tokenizer.vocab_size(), Some(binding(&tokenizer, absolute))))
        }
        #[cfg(feature = "tokenizers")]
        TokenizerSource::Save { json, origin } => {
            let tokenizer =
                TextTokenizer::from_bytes(&json).map_err(|reason| Error::Tokenizer {
                    path: origin.clone(),
                    reason,
                })?;
            check_vocab_size(vocab_size, &tokenizer, &origin)?;
            save_tokenizer(dir, &json, &tokenizer)?;
            Ok((
                tokenizer.vocab_size(),
                Some(binding(&tokenizer, TOKENIZER_FILE.into())),
            ))
        }
    }
}

#[cfg(feature = "tokenizers")]
fn binding(tokenizer: &TextTokenizer, path: PathBuf) -> TokenizerBinding {
    TokenizerBinding {
        fingerprint: tokenizer.fingerprint().to_string(),
        path: Some(path),
    }
}

#[cfg(feature = "tokenizers")]
fn check_vocab_size(given: Option<u32>, tokenizer: &TextTokenizer, path: &Path) -> Result<()> {
    match given {
        Some(n) if n != tokenizer.vocab_size() => Err(Error::VocabSizeMismatch {
            given: n,
            found: tokenizer.vocab_size(),
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Writes `DIR/tokenizer.json`, or keeps the one there if it is this same tokenizer.
#[cfg(feature = "tokenizers")]
fn save_tokenizer(dir: &Path, json: &[u8], tokenizer: &TextTokenizer) -> Result<()> {
    let path = dir.join(TOKENIZER_FILE);
    if exists(&path) {
        let there = TextTokenizer::from_file(&path)?;
        if there.fingerprint() != tokenizer.fingerprint() {
            return Err(Error::Refused {
                path,
                reason: "already exists and is another tokenizer; refusing to overwrite it",
            });
        }
        return Ok(());
    }
    create_dir(dir)?;
    std::fs::write(&path, json).map_err(|source| Error::FileOp {
        path: path.clone(),
        action: "write",
        source,
    })?;
    set_mode(&path, 0o644)
}

/// Creates the key directory readable by its owner only, whatever the umask (an existing
/// directory is left as it is; reading a key from one others can write is refused).
fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::FileOp {
        path: dir.to_path_buf(),
        action: "create the directory",
        source,
    })
}

/// Sets a new public file's mode (0644: under umask 000 it would be world-writable).
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
            |source| Error::FileOp {
                path: path.to_path_buf(),
                action: "set the mode of",
                source,
            },
        )?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

fn refuse_existing(path: &Path, reason: &'static str) -> Result<()> {
    if exists(path) {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(())
}

/// Whether anything (a dangling link included) is at `path`.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::session::tests::temp_dir;
    use crate::Seeding;

    fn ids_only(vocab_size: u32) -> NewProfile {
        NewProfile {
            scheme: Scheme::default(),
            vocab_size: Some(vocab_size),
            tokenizer: TokenizerSource::None,
            format: ProfileFormat::Toml,
        }
    }

    #[test]
    fn writes_a_key_and_a_profile_that_open_together() {
        let dir = temp_dir("create").join("deeper");
        let new = NewProfile {
            scheme: Scheme {
                seeding: Seeding::SelfSeeded,
                width: 3,
                ..Scheme::default()
            },
            format: ProfileFormat::Json,
            ..ids_only(500)
        };
        let created = Profile::create(&dir, new).unwrap();
        assert_eq!(created.profile_path, dir.join("profile.json"));
        assert_eq!(created.key_path, dir.join(KEY_FILE));
        assert_eq!(created.profile.key_file, Path::new(KEY_FILE));
        assert_eq!(
            created.profile.resolve(Path::new(KEY_FILE)),
            created.key_path
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&created.key_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let meta = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(meta(created.key_path.parent().unwrap()), 0o700);
            assert_eq!(meta(&created.profile_path), 0o644);
        }
        let session = Profile::open(&created.profile_path).unwrap();
        assert_eq!(session.profile(), &created.profile);
        assert_eq!(session.green_list().scheme().width, 3);

        // Nothing is overwritten: the key is checked first, then the profile.
        let key = std::fs::read(&created.key_path).unwrap();
        let err = Profile::create(&dir, ids_only(500)).unwrap_err();
        assert!(matches!(err, Error::Refused { ref path, .. } if *path == created.key_path));
        assert!(err.to_string().ends_with(
            "refusing to overwrite a key (losing it loses every watermark made with it)"
        ));
        assert_eq!(std::fs::read(&created.key_path).unwrap(), key);
        std::fs::remove_file(&created.key_path).unwrap();
        let again = NewProfile {
            format: ProfileFormat::Json,
            ..ids_only(500)
        };
        let err = Profile::create(&dir, again).unwrap_err();
        assert!(matches!(err, Error::Refused { ref path, .. } if *path == created.profile_path));
        assert!(!created.key_path.exists());
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn refuses_bad_parameters_before_writing_anything() {
        let dir = temp_dir("refuse").join("k");
        let bad_width = NewProfile {
            scheme: Scheme {
                seeding: Seeding::SelfSeeded,
                width: 1,
                ..Scheme::default()
            },
            ..ids_only(9)
        };
        for new in [ids_only(0), bad_width] {
            assert!(matches!(
                Profile::create(&dir, new),
                Err(Error::InvalidParameter(_))
            ));
        }
        let no_vocab = NewProfile {
            vocab_size: None,
            ..ids_only(9)
        };
        assert!(Profile::create(&dir, no_vocab).is_err());
        assert!(!dir.exists());
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[cfg(feature = "tokenizers")]
    #[test]
    fn binds_a_tokenizer_by_absolute_path_or_saves_it_beside_the_profile() {
        use crate::profile::session::tests::tokenizer::word_level;
        let dir = temp_dir("bind");
        let json = word_level(&["a", "b"]);
        std::fs::write(dir.join("tok.json"), &json).unwrap();
        let by_path = NewProfile {
            vocab_size: None,
            tokenizer: TokenizerSource::File(dir.join("tok.json")),
            ..ids_only(0)
        };
        let created = Profile::create(&dir.join("a"), by_path.clone()).unwrap();
        let binding = created.profile.tokenizer.clone().unwrap();
        assert!(binding.path.as_ref().unwrap().is_absolute());
        assert_eq!(created.profile.vocab_size, 3);
        let session = Profile::open(&created.profile_path).unwrap();
        assert_eq!(session.tokenizer().unwrap().encode("b a").unwrap(), [2, 1]);

        let wrong_size = NewProfile {
            vocab_size: Some(12),
            ..by_path
        };
        let err = Profile::create(&dir.join("b"), wrong_size).unwrap_err();
        assert!(
            matches!(
                err,
                Error::VocabSizeMismatch {
                    given: 12,
                    found: 3,
                    ..
                }
            ),
            "{err}"
        );

        let saved = NewProfile {
            vocab_size: None,
            tokenizer: TokenizerSource::Save {
                json: json.clone().into_bytes(),
                origin: "model.gguf".into(),
            },
            ..ids_only(0)
        };
        let created = Profile::create(&dir.join("c"), saved.clone()).unwrap();
        let binding = created.profile.tokenizer.clone().unwrap();
        assert_eq!(binding.path.as_deref(), Some(Path::new(TOKENIZER_FILE)));
        assert_eq!(
            std::fs::read_to_string(dir.join("c").join(TOKENIZER_FILE)).unwrap(),
            json
        );
        let session = Profile::open(&created.profile_path).unwrap();
        assert_eq!(session.tokenizer().unwrap().vocab_size(), 3);

        // Another tokenizer already in the directory is kept, and the profile refused.
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d").join(TOKENIZER_FILE), word_level(&["z"])).unwrap();
        let err = Profile::create(&dir.join("d"), saved.clone()).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert!(!dir.join("d").join(KEY_FILE).exists());
        let broken = NewProfile {
            tokenizer: TokenizerSource::Save {
                json: b"{\"model\": 3}".to_vec(),
                origin: "model.gguf".into(),
            },
            ..saved
        };
        let err = Profile::create(&dir.join("e"), broken).unwrap_err();
        assert!(
            matches!(err, Error::Tokenizer { ref path, .. } if path == Path::new("model.gguf"))
        );
        assert!(!dir.join("e").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
