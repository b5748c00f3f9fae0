//! The error type of the model crate. Messages are lower-case and name the offending value or
//! path, like those of `watermark-core`.

use std::path::PathBuf;

/// Everything loading and running the default model can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file is not where it was looked for.
    #[error("model file {path} not found: run 'make model' (or scripts/fetch-model.sh) to fetch it, or set TRACEMARK_MODEL to a GGUF file")]
    ModelMissing {
        /// Where the model was looked for.
        path: PathBuf,
    },
    /// A GGUF file could not be parsed, or lacks what the crate needs.
    #[error("{path}: malformed gguf: {reason}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A Hugging Face checkpoint directory could not be loaded: an unsupported architecture or
    /// configuration, a missing or misshapen tensor, no tokenizer.
    #[error("{path}: checkpoint: {reason}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tokenizer could not be built or run.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The caller asked the model for something it cannot do (an empty or too long sequence,
    /// a token outside the vocabulary, a bad batch).
    #[error("model input: {0}")]
    Input(String),
    /// A tensor operation failed (candle's message, without the backtrace candle appends when
    /// `RUST_BACKTRACE` is set).
    #[error("tensor: {0}")]
    Candle(String),
    /// The watermark core refused something.
    #[error(transparent)]
    Core(#[from] watermark_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Gguf`] for `path` from candle's error.
    pub fn gguf_candle(path: impl Into<PathBuf>, e: &candle_core::Error) -> Self {
        Error::gguf(path, candle_message(e))
    }

    /// An [`Error::Checkpoint`] for the directory `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Gguf`] for `path`.
    pub fn gguf(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Gguf {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(candle_message(&e))
    }
}

/// candle's message on one line: with `RUST_BACKTRACE=1` candle appends a multi-kilobyte
/// backtrace to its errors, which would end up inside the CLI's one-line error.
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::Context { inner, context } => {
            format!("{context}: {}", candle_message(inner))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_errors_lose_their_backtrace() {
        let inner = candle_core::Error::Msg("bad shape".into());
        let e = candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert_eq!(Error::from(e).to_string(), "tensor: bad shape");
    }
}
