//! Where the default model lives on disk.
//!
//! `scripts/fetch-model.sh` (`make model`) downloads the model, checks its SHA-256 against
//! [`DEFAULT_MODEL_SHA256`] and puts it in the cache directory:
//!
//! ```text
//! ${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}/models/SmolLM2-135M-Instruct.Q4_1.gguf
//! ```
//!
//! This module finds it there by the same rule. Environment variables, each ignored when empty
//! (as the shell's `${VAR:-default}` does):
//!
//! - `TRACEMARK_MODEL`: the path of the GGUF file itself; overrides the cache entirely.
//! - `TRACEMARK_CACHE`: the tracemark cache directory (the model is in its `models/`).
//! - `XDG_CACHE_HOME`: the user's cache directory; the tracemark cache is its `tracemark/`.
//! - `HOME`: otherwise the tracemark cache is `$HOME/.cache/tracemark`.
//!
//! The model is not hashed here: 98 MB on every run is the fetch script's job, done once.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// File name of the default model, SmolLM2-135M-Instruct quantised to Q4_1.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// SHA-256 of [`DEFAULT_MODEL_FILE`], as checked by `scripts/fetch-model.sh`.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Environment variable naming the model file, overriding the cache.
pub const MODEL_ENV: &str = "TRACEMARK_MODEL";

/// Environment variable naming the tracemark cache directory.
pub const CACHE_ENV: &str = "TRACEMARK_CACHE";

/// The tracemark cache directory: `$TRACEMARK_CACHE`, else `$XDG_CACHE_HOME/tracemark`, else
/// `$HOME/.cache/tracemark` (relative `.cache/tracemark` when even `HOME` is unset).
pub fn cache_dir() -> PathBuf {
    cache_dir_with(env_var)
}

/// Where the default model is expected: `$TRACEMARK_MODEL` when set, else
/// `<cache_dir>/models/SmolLM2-135M-Instruct.Q4_1.gguf`. Whether it exists is not checked.
pub fn default_model_path() -> PathBuf {
    default_model_path_with(env_var)
}

/// The default model's path if the file is there, else [`Error::ModelMissing`] naming where it
/// was looked for.
pub fn locate_default_model() -> Result<PathBuf> {
    let path = default_model_path();
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::ModelMissing { path })
    }
}

/// An environment variable, `None` when unset or empty.
fn env_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn cache_dir_with(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(dir) = var(CACHE_ENV) {
        return PathBuf::from(dir);
    }
    let base = match var("XDG_CACHE_HOME") {
        Some(xdg) => PathBuf::from(xdg),
        None => match var("HOME") {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => PathBuf::from(".cache"),
        },
    };
    base.join("tracemark")
}

fn default_model_path_with(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(path) = var(MODEL_ENV) {
        return PathBuf::from(path);
    }
    cache_dir_with(var).join("models").join(DEFAULT_MODEL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, v)| *k == name && !v.is_empty())
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn cache_dir_follows_the_fetch_script() {
        assert_eq!(
            cache_dir_with(env(&[("HOME", "/h")])),
            PathBuf::from("/h/.cache/tracemark")
        );
        assert_eq!(
            cache_dir_with(env(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")])),
            PathBuf::from("/x/tracemark")
        );
        assert_eq!(
            cache_dir_with(env(&[
                ("HOME", "/h"),
                ("XDG_CACHE_HOME", "/x"),
                ("TRACEMARK_CACHE", "/t")
            ])),
            PathBuf::from("/t")
        );
        // Empty counts as unset, as with ${VAR:-default}.
        assert_eq!(
            cache_dir_with(env(&[
                ("HOME", "/h"),
                ("XDG_CACHE_HOME", ""),
                ("TRACEMARK_CACHE", "")
            ])),
            PathBuf::from("/h/.cache/tracemark")
        );
        assert_eq!(cache_dir_with(env(&[])), PathBuf::from(".cache/tracemark"));
    }

    #[test]
    fn model_path_is_in_models_unless_overridden() {
        assert_eq!(
            default_model_path_with(env(&[("TRACEMARK_CACHE", "/t")])),
            PathBuf::from("/t/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        assert_eq!(
            default_model_path_with(env(&[
                ("TRACEMARK_CACHE", "/t"),
                ("TRACEMARK_MODEL", "/m.gguf")
            ])),
            PathBuf::from("/m.gguf")
        );
    }

    #[test]
    fn missing_model_message_says_how_to_fetch_it() {
        let e = Error::ModelMissing {
            path: "/nowhere/m.gguf".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("/nowhere/m.gguf"), "{msg}");
        assert!(
            msg.contains("run 'make model' (or scripts/fetch-model.sh) to fetch it"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }
}
