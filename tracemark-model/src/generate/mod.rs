//! Generation: one loop that every text of tracemark goes through.
//!
//! [`run`] draws the tokens of a set of [`Job`]s (prompt ids, green list or none, sampling,
//! seed) from any [`LogitsSource`] (the llama model with its KV cache, or a function of the
//! context such as the synthetic model), in batches, with the watermarking sampler, stop tokens
//! and the `min_tokens` mask. Callers plug in through an [`Observer`], which sees every step
//! (the unbiased logits row, the token drawn, whether the job stopped): streaming, the
//! evaluation's statistics and progress lines are observers, not copies of the loop.
//! [`Generator`] is the default model with its tokenizer and stop tokens, answering prompts.

mod generator;
mod observer;
mod run;
mod source;

pub use generator::{AnswerSink, Completion, GenerateOptions, Generator};
pub use observer::{Observer, Step, Tokens};
pub use run::{run, End, Job, Limits, Output};
pub use source::{LogitsSource, PerContext};
