//! The one error type of the core. Messages are lower-case, name the offending value, and
//! never contain key material: a key is always shown by its fingerprint.

use std::path::PathBuf;

/// Everything the core can refuse, so that callers can match on the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be created, written or resolved.
    #[error("{path}: cannot {action}: {source}")]
    FileOp {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was attempted ("create the directory", "write", ...).
        action: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file is refused by another error about its content (a tokenizer file that is not the
    /// profile's); the message names the file.
    #[error("{path}: {source}")]
    File {
        /// The file concerned.
        path: PathBuf,
        /// Why it is refused.
        #[source]
        source: Box<Error>,
    },
    /// Something is in the way of a new file, or a path cannot be used; nothing is overwritten.
    #[error("{path}: {reason}")]
    Refused {
        /// The path concerned.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The key of a new profile was written, its profile file was not: the key must be moved
    /// away (or the profile written by hand) before trying again.
    #[error("the key was written to {key_path} but the profile could not be saved")]
    ProfileNotSaved {
        /// Where the new key is.
        key_path: PathBuf,
        /// Why the profile could not be saved.
        #[source]
        source: Box<Error>,
    },
    /// A file that must not be read: not a regular file, or over its size limit.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why it was not read.
        reason: String,
    },
    /// A key file exists but is not a tracemark key.
    #[error("{path}: not a tracemark key file ({reason})")]
    MalformedKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it; never its contents.
        reason: &'static str,
    },
    /// A profile file could not be parsed.
    #[error("{path}: malformed profile: {reason}")]
    MalformedProfile {
        /// The profile file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The profile names a spec version this build does not implement.
    #[error("profile uses watermark spec {found:?}, this build implements {expected:?}")]
    SpecMismatch {
        /// The spec string in the profile.
        found: String,
        /// The spec this build implements.
        expected: &'static str,
    },
    /// The key loaded is not the key the profile was made with.
    #[error("key fingerprint {found} does not match the profile's {expected}: wrong key file")]
    KeyMismatch {
        /// Fingerprint of the key that was loaded.
        found: String,
        /// Fingerprint recorded in the profile.
        expected: String,
    },
    /// The tokenizer given is not the one the profile is bound to.
    #[error("tokenizer fingerprint {found} does not match the profile's {expected}: detecting with another tokenizer gives meaningless scores")]
    TokenizerMismatch {
        /// Fingerprint of the tokenizer given.
        found: String,
        /// Fingerprint recorded in the profile.
        expected: String,
    },
    /// Text detection was asked for but the profile binds no tokenizer.
    #[error("the profile binds no tokenizer; create it with `tracemark keygen --tokenizer FILE`")]
    NoTokenizer,
    /// The profile binds a tokenizer by fingerprint only, and no tokenizer file was named.
    #[error("the profile records no tokenizer path")]
    NoTokenizerPath,
    /// A vocabulary size given with a tokenizer is not the tokenizer's.
    #[error("vocabulary size {given} differs from the {found} tokens of the tokenizer {path}")]
    VocabSizeMismatch {
        /// The size given.
        given: u32,
        /// The tokenizer's size.
        found: u32,
        /// The tokenizer file.
        path: PathBuf,
    },
    /// A tokenizer file could not be loaded.
    #[error("{path}: cannot load tokenizer: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizer library's message.
        reason: String,
    },
    /// A scheme parameter is out of its range.
    #[error("invalid watermark parameter: {0}")]
    InvalidParameter(String),
    /// A token id is outside the profile's vocabulary.
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfVocabulary {
        /// The offending id.
        token: u32,
        /// The vocabulary size in the profile.
        vocab_size: u32,
    },
    /// A logits row is shorter than the vocabulary.
    #[error("logits row has {len} entries but the vocabulary has {vocab_size} tokens")]
    RowTooShort {
        /// Length of the row given.
        len: usize,
        /// The vocabulary size in the profile.
        vocab_size: u32,
    },
    /// A batch buffer does not split into the rows and contexts given.
    #[error("batch shape mismatch: {0}")]
    BatchShape(String),
    /// A logits row the sampler cannot draw from.
    #[error("cannot sample: {0}")]
    BadLogits(&'static str),
    /// An audit would outgrow its bound on distinct scored tuples (its memory).
    #[error("the audit would hold more than {limit} distinct scored tuples ({bytes} bytes of table at most), its bound: raise the limit (TRACEMARK_MAX_AUDIT_TUPLES on the command line) or audit a sample of the outputs")]
    AuditTooLarge {
        /// The bound.
        limit: u64,
        /// The table's size at the bound, in bytes (32 per tuple at most).
        bytes: u64,
    },
    /// An account id, or a line of an accounts list, that is not a valid account id.
    #[error("bad account id: {0}")]
    BadAccount(String),
    /// There is nothing to score.
    #[error("empty input: {0}")]
    EmptyInput(String),
    /// The operating system's random number generator failed.
    #[error("os random number generator failed: {0}")]
    Rng(String),
    /// A tensor operation failed (candle adapter); candle's message without the backtrace it
    /// appends when `RUST_BACKTRACE` is set.
    #[cfg(feature = "candle")]
    #[error("tensor: {0}")]
    Tensor(String),
}

#[cfg(feature = "candle")]
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        let mut e = &e;
        while let candle_core::Error::WithBacktrace { inner, .. } = e {
            e = inner;
        }
        Error::Tensor(e.to_string())
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
