//! The default model of tracemark, SmolLM2-135M-Instruct from a GGUF file, run on candle.
//!
//! Kept out of `watermark-core` so that an inference server links the hook without any model
//! code; the CLI and the evaluation use this crate.

pub mod align;
pub mod cache;
pub mod checkpoint;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod llama;
pub mod reading;
pub mod suspect;
pub mod tokenizer;

pub use cache::{
    default_model_path, locate_default_model, DEFAULT_MODEL_FILE, DEFAULT_MODEL_SHA256,
};
pub use checkpoint::Checkpoint;
pub use error::{Error, Result};
pub use suspect::SuspectModel;
pub use tokenizer::{
    chat_prompt, load_default_tokenizer, tokenizer_json_from_gguf, write_tokenizer_json,
    GgufTokenizer, SpecialTokens,
};
