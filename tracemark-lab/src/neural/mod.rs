//! Neural students: SmolLM2 (or a small random llama) fine-tuned by gradient descent.
//!
//! The inference llama of `tracemark-model` runs quantized matrices and a hand-written CPU
//! attention, neither of which candle can differentiate. This module is a second, plain forward
//! pass of the same architecture on f32 tensors ([`NeuralLlama`]), whose weights are candle
//! `Var`s (full fine-tuning) or frozen tensors with trainable low-rank adapters (LoRA), trained by
//! AdamW on the answers of prompt/answer pairs ([`train`]), and written back as a GGUF file
//! ([`write_gguf`]) that the audit loads with `tracemark_model::llama::Llama::load` like any
//! suspect model. Training is all this module does: sampling and reading mode run on the faster
//! inference llama from the saved file.

mod config;
mod gguf_io;
mod model;
mod outputs;
mod train;

pub use config::NeuralConfig;
pub use gguf_io::{load_pretrained, write_gguf, SavedDType};
pub use model::{NeuralLlama, Tuning};
pub use outputs::{settings_digest, student_outputs, StudentOutputs};
pub use train::{train, Example, PrefixCache, StepReport, TrainOptions, TrainReport};

/// What can go wrong while building, training or saving a neural student.
#[derive(Debug, thiserror::Error)]
pub enum NeuralError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading the teacher's file failed.
    #[error(transparent)]
    Model(#[from] tracemark_model::Error),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A GGUF file whose metadata or tensors do not describe a llama this module can train.
    #[error("{path}: {message}")]
    Gguf {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A refused argument (empty data, a token outside the vocabulary, a bad setting).
    #[error("{0}")]
    Input(String),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, NeuralError>;
