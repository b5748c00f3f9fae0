//! The default model of tracemark, SmolLM2-135M-Instruct from a GGUF file, run on candle.
//!
//! Kept out of `watermark-core` so that an inference server links the hook without any model
//! code; the CLI and the evaluation use this crate.
