//! The second scheme family: vLLM's native watermark (`vllm serve --watermark-config`), which
//! tracemark verifies and audits but does not generate. Spec: `WATERMARK-SPEC.md`, section
//! "Scheme family `vllm-gumbel-philox-v1`". Bit-for-bit with vLLM 0.32's
//! `vllm/v1/watermarking/` (checked by `tests/vllm_scheme.rs` against vectors its own functions
//! wrote); the code here is tracemark's own.

mod key;
mod philox;
#[cfg(feature = "profile")]
mod profile;
mod reading;
mod score;
mod scorer;
mod tail;

pub use key::{derive_watermark_key, key_fingerprint};
pub use philox::{
    context_state, philox4x32_10, prf_word, token_word, uniform, word_to_uniform, PAD_TOKEN,
};
#[cfg(feature = "profile")]
pub use profile::{
    generate_key, read_key, write_key, VllmAlgorithm, VllmProfile, VllmSettings, VLLM_KEY_FILE,
};
pub use reading::{ReadingAudit, ReadingReport};
pub use score::{
    detect_dual_key, detect_gumbel, ContextScope, GumbelScanner, GumbelScore, MAX_CONTEXT_WIDTH,
};
pub use scorer::{token_score, VllmScorer, DEFAULT_ALPHA};
pub use tail::{ln_gamma_q, vllm_dual_key_p_value, weighted_exp_ln_sf};

/// The scheme family's name in profiles and reports (both algorithms, `gumbel` and
/// `dual_key_gumbel`, share the PRF and contexts).
pub const VLLM_SCHEME: &str = "vllm-gumbel-philox-v1";

/// vLLM's default context width (`WatermarkConfig.context_width`).
pub const DEFAULT_CONTEXT_WIDTH: usize = 4;
