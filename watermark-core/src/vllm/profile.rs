//! Profiles of the vLLM scheme family: what a detector must agree on with `vllm serve
//! --watermark-config` (key, algorithm, context width, context deduplication), plus the
//! tokenizer and the false-positive rate, in one TOML or JSON file beside a key file.
//!
//! The key file holds vLLM's key as vLLM takes it, a decimal integer below 2^64, on one line;
//! like tracemark's own key files it must be private (mode 600), and the profile records only
//! its fingerprint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::key::key_fingerprint;
use super::reading::ReadingAudit;
use super::score::{ContextScope, GumbelScanner, MAX_CONTEXT_WIDTH};
use super::scorer::{VllmScorer, DEFAULT_ALPHA};
use super::VLLM_SCHEME;
use crate::error::{Error, Result};
use crate::fpr::{Fpr, DEFAULT_FPR};
use crate::profile::is_json;
use crate::profile::TokenizerBinding;

/// vLLM's watermarking algorithms this build scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VllmAlgorithm {
    /// `gumbel`: Gumbel-max sampling keyed by the key itself.
    #[default]
    Gumbel,
    /// `dual_key_gumbel`: two keys derived from the key; the generator samples a token with
    /// key B with probability `alpha`, else with key A, and the detector weights both scores.
    DualKeyGumbel,
}

impl VllmAlgorithm {
    /// The name vLLM's `--watermark-config` uses.
    pub fn name(self) -> &'static str {
        match self {
            VllmAlgorithm::Gumbel => "gumbel",
            VllmAlgorithm::DualKeyGumbel => "dual_key_gumbel",
        }
    }
}

/// What a detector must agree on with vLLM's `--watermark-config`, besides the key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VllmSettings {
    /// vLLM's `algorithm`.
    pub algorithm: VllmAlgorithm,
    /// vLLM's `alpha` (`dual_key_gumbel` only; `None` is vLLM's default, 0.1).
    pub alpha: Option<f64>,
    /// vLLM's `context_width`.
    pub context_width: usize,
    /// vLLM's `deduplicate_contexts`.
    pub deduplicate_contexts: ContextScope,
}

impl Default for VllmSettings {
    fn default() -> Self {
        VllmSettings {
            algorithm: VllmAlgorithm::Gumbel,
            alpha: None,
            context_width: super::DEFAULT_CONTEXT_WIDTH,
            deduplicate_contexts: ContextScope::SingleTurn,
        }
    }
}

/// A profile of the vLLM scheme family, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a vLLM watermark profile (spec, key_file, key_fingerprint, context_width)"
)]
pub struct VllmProfile {
    /// Must be [`VLLM_SCHEME`].
    pub spec: String,
    /// File holding vLLM's key (decimal), relative to the profile's directory or absolute.
    pub key_file: PathBuf,
    /// Fingerprint of that key ([`key_fingerprint`]); another key is refused.
    pub key_fingerprint: String,
    /// vLLM's `algorithm`.
    #[serde(default)]
    pub algorithm: VllmAlgorithm,
    /// vLLM's `alpha`, for `dual_key_gumbel` only (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// vLLM's `context_width` (default 4).
    #[serde(default = "default_width")]
    pub context_width: usize,
    /// vLLM's `deduplicate_contexts` (default `single_turn`).
    #[serde(default)]
    pub deduplicate_contexts: ContextScope,
    /// The tokenizer the served model uses, for text input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerBinding>,
    /// Default false-positive rate of verdicts.
    #[serde(default = "default_fpr")]
    pub fpr: f64,
    /// Directory the profile was loaded from.
    #[serde(skip)]
    base_dir: PathBuf,
}

fn default_width() -> usize {
    super::DEFAULT_CONTEXT_WIDTH
}

fn default_fpr() -> f64 {
    DEFAULT_FPR
}

/// Largest profile or key file read (a profile is under a kilobyte; the bound is the green-list
/// profile's, so both families refuse the same files with the same error).
const MAX_FILE_BYTES: u64 = 1 << 20;

impl VllmProfile {
    /// A profile for `key` (to be stored at `key_file`) at vLLM's defaults.
    pub fn new(key_file: PathBuf, key: u64, context_width: usize) -> Result<Self> {
        let profile = VllmProfile {
            spec: VLLM_SCHEME.to_string(),
            key_file,
            key_fingerprint: key_fingerprint(key),
            algorithm: VllmAlgorithm::Gumbel,
            alpha: None,
            context_width,
            deduplicate_contexts: ContextScope::SingleTurn,
            tokenizer: None,
            fpr: DEFAULT_FPR,
            base_dir: PathBuf::new(),
        };
        profile.validate(Path::new("<new profile>"))?;
        Ok(profile)
    }

    /// Whether the profile file at `path` names this scheme family (its `spec`), so that a
    /// command can tell the two families apart before loading either. Reads the file.
    pub fn is_vllm_profile(path: &Path) -> Result<bool> {
        #[derive(Deserialize)]
        struct SpecOnly {
            spec: Option<String>,
        }
        let raw = crate::files::read_limited(path, MAX_FILE_BYTES, "profile")?;
        let text = String::from_utf8_lossy(&raw);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let found: Option<SpecOnly> = if is_json(path) {
            serde_json::from_str(text).ok()
        } else {
            toml::from_str(text).ok()
        };
        Ok(found.and_then(|s| s.spec).as_deref() == Some(VLLM_SCHEME))
    }

    /// Reads and checks a profile (`.json` as JSON, anything else as TOML).
    pub fn load(path: &Path) -> Result<Self> {
        let raw = crate::files::read_limited(path, MAX_FILE_BYTES, "profile")?;
        let malformed = |reason: String| Error::MalformedProfile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(&raw).map_err(|_| malformed("not UTF-8 text".into()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut profile: VllmProfile = if is_json(path) {
            serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| malformed(e.message().to_string()))?
        };
        profile.validate(path)?;
        profile.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(profile)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let malformed = |reason: String| Error::MalformedProfile {
            path: path.to_path_buf(),
            reason,
        };
        if self.spec != VLLM_SCHEME {
            return Err(malformed(format!(
                "spec {:?} is not {VLLM_SCHEME:?}",
                self.spec
            )));
        }
        if !(1..=MAX_CONTEXT_WIDTH).contains(&self.context_width) {
            return Err(malformed(format!(
                "context_width {} must lie in 1..={MAX_CONTEXT_WIDTH}",
                self.context_width
            )));
        }
        Fpr::new(self.fpr)
            .map_err(|_| malformed(format!("fpr {} must lie in (0, 1)", self.fpr)))?;
        match (self.algorithm, self.alpha) {
            (VllmAlgorithm::Gumbel, Some(_)) => {
                return Err(malformed("alpha applies to dual_key_gumbel only".into()))
            }
            (VllmAlgorithm::DualKeyGumbel, Some(alpha)) if !(0.0..=1.0).contains(&alpha) => {
                return Err(malformed(format!("alpha {alpha} must lie in [0, 1]")))
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the profile; `.json` paths as JSON, anything else as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::profile::save_as(self, path)
    }

    /// Resolves a path stored in the profile against the profile's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        crate::profile::resolve_in(&self.base_dir, path)
    }

    /// The default false-positive rate.
    pub fn fpr(&self) -> Fpr {
        Fpr::new(self.fpr).unwrap_or(Fpr::DEFAULT)
    }

    /// Reads the key file, checks it against the profile, and returns a scanner for one test.
    pub fn scanner(&self) -> Result<GumbelScanner> {
        let key = read_key(&self.resolve(&self.key_file))?;
        self.scanner_with(key)
    }

    /// A scanner with a key held elsewhere, checked against the profile's fingerprint.
    pub fn scanner_with(&self, key: u64) -> Result<GumbelScanner> {
        let scorer = self.scorer_with(key)?;
        GumbelScanner::with_scorer(scorer, self.context_width, self.deduplicate_contexts)
    }

    /// Reads the key file and returns an empty reading-mode audit under it.
    pub fn reading_audit(&self) -> Result<ReadingAudit> {
        let key = read_key(&self.resolve(&self.key_file))?;
        ReadingAudit::new(self.scorer_with(key)?, self.context_width)
    }

    /// The per-token scorer of the profile's algorithm under `key`, checked against the
    /// profile's fingerprint.
    pub fn scorer_with(&self, key: u64) -> Result<VllmScorer> {
        let found = key_fingerprint(key);
        if found != self.key_fingerprint {
            return Err(Error::KeyMismatch {
                found,
                expected: self.key_fingerprint.clone(),
            });
        }
        match self.algorithm {
            VllmAlgorithm::Gumbel => Ok(VllmScorer::Gumbel { key }),
            VllmAlgorithm::DualKeyGumbel => {
                VllmScorer::dual_key(key, self.alpha.unwrap_or(DEFAULT_ALPHA))
            }
        }
    }

    /// Checks that a tokenizer is the one the profile binds.
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

/// A fresh random vLLM key from the operating system's generator.
pub fn generate_key() -> Result<u64> {
    use rand_core::TryRngCore;
    rand_core::OsRng
        .try_next_u64()
        .map_err(|e| Error::Rng(e.to_string()))
}

/// Name of the key file [`VllmProfile::create`] writes.
pub const VLLM_KEY_FILE: &str = "vllm.key";

impl VllmProfile {
    /// Creates `dir` (if needed), a new random key in `dir/vllm.key` (never replacing one) and
    /// the profile `dir/profile.toml` (or `.json`), bound to `tokenizer` when given. Returns the
    /// profile and its path.
    pub fn create(
        dir: &Path,
        settings: &VllmSettings,
        tokenizer: Option<&Path>,
        json: bool,
    ) -> Result<(VllmProfile, PathBuf)> {
        let mut profile = VllmProfile::new(VLLM_KEY_FILE.into(), 0, settings.context_width)?;
        profile.deduplicate_contexts = settings.deduplicate_contexts;
        profile.algorithm = settings.algorithm;
        profile.alpha = settings.alpha;
        profile.validate(Path::new("<new profile>"))?;
        #[cfg(feature = "tokenizers")]
        if let Some(path) = tokenizer {
            let bytes = crate::files::read_limited(path, 1 << 30, "tokenizer")?;
            let absolute = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
            profile.tokenizer = Some(TokenizerBinding {
                fingerprint: crate::text::file_fingerprint(&bytes),
                path: Some(absolute),
            });
        }
        #[cfg(not(feature = "tokenizers"))]
        if tokenizer.is_some() {
            return Err(Error::InvalidParameter(
                "this build has no tokenizer support".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let profile_path = dir.join(if json { "profile.json" } else { "profile.toml" });
        if profile_path.exists() {
            return Err(Error::InvalidParameter(format!(
                "{} exists: a profile is never replaced",
                profile_path.display()
            )));
        }
        let key = generate_key()?;
        write_key(&dir.join(VLLM_KEY_FILE), key)?;
        profile.key_fingerprint = key_fingerprint(key);
        profile.save(&profile_path)?;
        profile.base_dir = dir.to_path_buf();
        Ok((profile, profile_path))
    }
}

/// Reads a vLLM key file: one decimal integer below 2^64. The file must be private unless
/// `TRACEMARK_ALLOW_SHARED_KEY=1`, as for tracemark's own keys. Errors never quote the file.
pub fn read_key(path: &Path) -> Result<u64> {
    let raw = crate::files::read_limited(path, MAX_FILE_BYTES, "key file")?;
    let malformed = |reason| Error::MalformedKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(&raw).map_err(|_| malformed("not UTF-8 text"))?;
    let key = text
        .trim()
        .parse::<u64>()
        .map_err(|_| malformed("not a vLLM key: one decimal integer below 2^64"))?;
    if std::env::var_os("TRACEMARK_ALLOW_SHARED_KEY").is_none_or(|v| v != "1") {
        crate::key::check_private(path)?;
    }
    Ok(key)
}

/// Writes a vLLM key file, readable by its owner only, refusing to replace one.
pub fn write_key(path: &Path, key: u64) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    writeln!(file, "{key}").map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_key() {
        let dir = crate::files::private_test_dir("vllm-profile");
        write_key(&dir.join("vllm.key"), 12345).unwrap();
        assert!(
            write_key(&dir.join("vllm.key"), 1).is_err(),
            "a key is never replaced"
        );
        let profile = VllmProfile::new("vllm.key".into(), 12345, 4).unwrap();
        for name in ["p.toml", "p.json"] {
            let path = dir.join(name);
            profile.save(&path).unwrap();
            assert!(VllmProfile::is_vllm_profile(&path).unwrap());
            let loaded = VllmProfile::load(&path).unwrap();
            assert_eq!(loaded.context_width, 4);
            assert_eq!(loaded.deduplicate_contexts, ContextScope::SingleTurn);
            loaded.scanner().unwrap();
            assert!(matches!(
                loaded.scanner_with(54321),
                Err(Error::KeyMismatch { .. })
            ));
        }
        let text = std::fs::read_to_string(dir.join("p.toml")).unwrap();
        assert!(
            !text.contains("12345"),
            "the profile never holds the key: {text}"
        );
    }

    #[test]
    fn create_writes_a_private_key_and_never_replaces_it() {
        let dir = crate::files::private_test_dir("vllm-create").join("keys");
        let settings = VllmSettings {
            context_width: 2,
            deduplicate_contexts: ContextScope::All,
            ..VllmSettings::default()
        };
        let (profile, path) = VllmProfile::create(&dir, &settings, None, false).unwrap();
        let loaded = VllmProfile::load(&path).unwrap();
        assert_eq!(
            loaded,
            VllmProfile {
                base_dir: dir.clone(),
                ..profile
            }
        );
        assert_eq!(loaded.deduplicate_contexts, ContextScope::All);
        loaded.scanner().unwrap();
        assert!(VllmProfile::create(&dir, &settings, None, false).is_err());
    }

    #[test]
    fn dual_key_profiles_score_with_both_derived_keys() {
        let dir = crate::files::private_test_dir("vllm-dual").join("keys");
        let settings = VllmSettings {
            algorithm: VllmAlgorithm::DualKeyGumbel,
            alpha: Some(0.25),
            ..VllmSettings::default()
        };
        let (_, path) = VllmProfile::create(&dir, &settings, None, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("dual_key_gumbel") && text.contains("alpha = 0.25"),
            "{text}"
        );
        let loaded = VllmProfile::load(&path).unwrap();
        let key = read_key(&dir.join(VLLM_KEY_FILE)).unwrap();
        assert_eq!(
            loaded.scorer_with(key).unwrap(),
            VllmScorer::dual_key(key, 0.25).unwrap()
        );
        loaded.reading_audit().unwrap();
    }

    #[test]
    fn bad_profiles_and_keys_are_refused() {
        let dir = crate::files::private_test_dir("vllm-profile-bad");
        let path = dir.join("p.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write("spec = \"vllm-gumbel-philox-v1\"\nkey_file = \"k\"\nkey_fingerprint = \"x\"\ncontext_width = 0\n");
        assert!(matches!(
            VllmProfile::load(&path),
            Err(Error::MalformedProfile { .. })
        ));
        for bad in [
            "algorithm = \"dual_key\"\n",
            "algorithm = \"gumbel\"\nalpha = 0.2\n",
            "algorithm = \"dual_key_gumbel\"\nalpha = 1.5\n",
        ] {
            write(&format!("spec = \"vllm-gumbel-philox-v1\"\nkey_file = \"k\"\nkey_fingerprint = \"x\"\n{bad}"));
            assert!(
                matches!(
                    VllmProfile::load(&path),
                    Err(Error::MalformedProfile { .. })
                ),
                "{bad}"
            );
        }
        write("spec = \"tracemark-green-v1\"\n");
        assert!(!VllmProfile::is_vllm_profile(&path).unwrap());
        for bad in ["-1\n", "18446744073709551616\n", "0x10\n", ""] {
            let key = dir.join("bad.key");
            let _ = std::fs::remove_file(&key);
            std::fs::write(&key, bad).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            assert!(
                matches!(read_key(&key), Err(Error::MalformedKey { .. })),
                "{bad:?}"
            );
        }
    }
}
