//! The keyed green-list function: which tokens a watermarked model is nudged towards.
//!
//! `WATERMARK-SPEC.md` is the normative description; this module is its implementation and the
//! two must change together (bump [`SPEC_VERSION`] when any output changes).
//!
//! Every decision is `value(seed, token) < threshold`, where `value` is 16 bits of ChaCha8
//! keystream at a position fixed by the token and `seed` is derived from the window. So a single
//! (window, token) costs one block, and a whole vocabulary row for one window is one contiguous
//! keystream: no vocabulary permutation is ever built.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::SecretKey;
use crate::prf::{Prf, LANES};

/// Version of the green-list function; stored in every profile and report.
pub const SPEC_VERSION: &str = "tracemark-green-v1";

/// Largest vocabulary accepted; bounds the self-seeded tables at 6 bytes a token (100 MB).
pub const MAX_VOCAB_SIZE: u32 = 1 << 24;

/// Tokens covered by one 64-byte keystream block (16 bits each).
const TOKENS_PER_BLOCK: u32 = 32;
/// Counters at or above this are reserved for the token hash, so its PRF inputs never meet a
/// green-value input (green-value counters are below 2^27).
const TOKEN_HASH_COUNTER_BASE: u64 = 1 << 63;
/// Nonce of the token-hash stream ("tokenhas").
const TOKEN_HASH_NONCE: u64 = 0x746f_6b65_6e68_6173;

/// How the window that seeds a decision is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seeding {
    /// The `width` tokens before the candidate (Kirchenbauer et al.'s LeftHash for width 1).
    Previous,
    /// The `width - 1` tokens before the candidate and the candidate itself, anchored on the
    /// one with the smallest keyed hash; an edit moves the seed only if it touches the anchor.
    SelfSeeded,
}

impl Seeding {
    /// Every seeding, in the order help texts list them.
    pub const ALL: [Seeding; 2] = [Seeding::Previous, Seeding::SelfSeeded];

    /// The name used on the command line, in profiles and in Python: `previous`, `self-seeded`.
    pub fn name(self) -> &'static str {
        match self {
            Seeding::Previous => "previous",
            Seeding::SelfSeeded => "self-seeded",
        }
    }
}

impl std::fmt::Display for Seeding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Seeding {
    type Err = Error;

    /// Reads the names [`Seeding::name`] writes (those of the profile files too).
    fn from_str(s: &str) -> Result<Self> {
        Seeding::ALL
            .into_iter()
            .find(|seeding| seeding.name() == s)
            .ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "seeding {s:?} is not \"previous\" or \"self-seeded\""
                ))
            })
    }
}

/// The watermark's parameters: everything generation and detection must agree on besides the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scheme table (seeding, width, gamma, delta)"
)]
pub struct Scheme {
    /// Window construction.
    pub seeding: Seeding,
    /// Tokens in the window, 1..=8 (2..=8 when self-seeded, where the candidate is one of them).
    pub width: usize,
    /// Target fraction of green tokens, in (0, 1); rounded to a multiple of 2^-16.
    pub gamma: f64,
    /// Logit bias added to green tokens at generation.
    pub delta: f32,
}

impl Default for Scheme {
    /// Width 2 over the previous tokens, γ = 0.25, δ = 2: see the spec for why.
    fn default() -> Self {
        Scheme {
            seeding: Seeding::Previous,
            width: 2,
            gamma: 0.25,
            delta: 2.0,
        }
    }
}

impl Scheme {
    /// Checks every parameter against its range.
    pub fn validate(&self) -> Result<()> {
        let min_width = match self.seeding {
            Seeding::Previous => 1,
            Seeding::SelfSeeded => 2,
        };
        if !(min_width..=8).contains(&self.width) {
            return Err(Error::InvalidParameter(format!(
                "width {} is outside {min_width}..=8 for {:?} seeding",
                self.width, self.seeding
            )));
        }
        let threshold = (self.gamma * 65536.0).round();
        // Also rejects NaN: NaN is in no range.
        if !(1.0..=65535.0).contains(&threshold) {
            return Err(Error::InvalidParameter(format!(
                "gamma {} must lie in (0, 1), at least 2^-16 from either end",
                self.gamma
            )));
        }
        if !self.delta.is_finite() || self.delta < 0.0 {
            return Err(Error::InvalidParameter(format!(
                "delta {} must be finite and non-negative",
                self.delta
            )));
        }
        Ok(())
    }

    /// Green iff the 16-bit value is below this.
    fn threshold(&self) -> u32 {
        (self.gamma * 65536.0).round() as u32
    }

    /// The green probability actually realised: γ rounded to 16 bits. Statistics use this.
    pub fn effective_gamma(&self) -> f64 {
        f64::from(self.threshold()) / 65536.0
    }

    /// Context tokens a decision needs (the window less the candidate, if it is in it).
    pub fn context_width(&self) -> usize {
        match self.seeding {
            Seeding::Previous => self.width,
            Seeding::SelfSeeded => self.width - 1,
        }
    }

    /// Domain-separation constant: profiles with different seeding or width never share streams.
    fn tag(&self) -> u64 {
        let id: u64 = match self.seeding {
            Seeding::Previous => 1,
            Seeding::SelfSeeded => 2,
        };
        0x7472_6163_656d_0000 ^ (id << 8) ^ self.width as u64
    }
}

/// One green-list decision: the PRF input's seed, the 16-bit value, and the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The 64-bit ChaCha nonce derived from the window (and, self-seeded, the candidate).
    pub seed: u64,
    /// The 16 keystream bits for this token.
    pub value: u16,
    /// `value < round(γ · 65536)`.
    pub green: bool,
}

/// Per-key tables of the self-seeded scheme, built once for the whole vocabulary.
struct SelfTables {
    /// Keyed 32-bit hash of each token: the anchor is the window token with the smallest.
    token_hash: Vec<u32>,
    /// Each token's value when it anchors its own window; lets a whole row be one keystream pass.
    self_value: Vec<u16>,
}

/// The green-list function for one key, scheme and vocabulary. Cheap to clone.
#[derive(Clone)]
pub struct GreenList {
    prf: Prf,
    scheme: Scheme,
    vocab_size: u32,
    threshold: u32,
    tag: u64,
    key_fingerprint: String,
    tables: Option<Arc<SelfTables>>,
    /// The account whose draw a sampler uses (see [`GreenList::with_account`]).
    account: Option<Arc<crate::account::AccountKey>>,
}

impl std::fmt::Debug for GreenList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreenList")
            .field("key_fingerprint", &self.key_fingerprint)
            .field("scheme", &self.scheme)
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}

impl GreenList {
    /// Builds the function; for self-seeded schemes this computes the per-token tables
    /// (one ChaCha block per token, a few milliseconds for 256k tokens).
    pub fn new(key: &SecretKey, scheme: Scheme, vocab_size: u32) -> Result<Self> {
        scheme.validate()?;
        if vocab_size == 0 || vocab_size > MAX_VOCAB_SIZE {
            return Err(Error::InvalidParameter(format!(
                "vocabulary size {vocab_size} is outside 1..={MAX_VOCAB_SIZE}"
            )));
        }
        let mut green = GreenList {
            prf: Prf::new(key),
            threshold: scheme.threshold(),
            tag: scheme.tag(),
            scheme,
            vocab_size,
            key_fingerprint: key.fingerprint(),
            tables: None,
            account: None,
        };
        if green.scheme.seeding == Seeding::SelfSeeded {
            green.tables = Some(Arc::new(green.build_self_tables()));
        }
        Ok(green)
    }

    /// The scheme's parameters.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Tokens in the vocabulary; ids at or above it are rejected.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Fingerprint of the key, for reports.
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }

    /// Whether `token` is green after `context` (the tokens before it; only the last
    /// `context_width` matter). `None` when the context is too short to decide.
    pub fn is_green(&self, context: &[u32], token: u32) -> Result<Option<bool>> {
        Ok(self.decide(context, token)?.map(|d| d.green))
    }

    /// The full decision for `token` after `context`, as the spec's test vectors state it.
    /// `None` when the context is too short to decide.
    pub fn decide(&self, context: &[u32], token: u32) -> Result<Option<Decision>> {
        self.check_token(token)?;
        let need = self.scheme.context_width();
        if context.len() < need {
            return Ok(None);
        }
        let window = &context[context.len() - need..];
        for &t in window {
            self.check_token(t)?;
        }
        let seed = self.seed(window, token);
        let value = self.value(seed, token);
        Ok(Some(Decision {
            seed,
            value,
            green: self.is_green_value(value),
        }))
    }

    /// The same green list, whose samplers draw with `account`'s uniforms (the account signal,
    /// see [`crate::account`]). Detection ignores it: the green list itself is unchanged.
    pub fn with_account(mut self, account: crate::account::AccountKey) -> Self {
        self.account = Some(Arc::new(account));
        self
    }

    /// The account samplers draw for, if any.
    pub fn account(&self) -> Option<&crate::account::AccountKey> {
        self.account.as_deref()
    }

    /// The account streams' seed of a context window (`context_width` tokens): the chain
    /// z = TAG, z = mix64(z ^ w) over the window. For `previous` seeding it is the master seed;
    /// for `self-seeded` it keys the account on the ordered context, never on the min-hash
    /// anchor (an anchor shared by many contexts would reuse one uniform everywhere).
    #[inline]
    pub(crate) fn context_chain_seed(&self, window: &[u32]) -> u64 {
        window
            .iter()
            .fold(self.tag, |z, &t| mix64(z ^ u64::from(t)))
    }

    /// The master key's PRF (account keys are derived from its key).
    pub(crate) fn prf(&self) -> &Prf {
        &self.prf
    }

    pub(crate) fn check_token(&self, token: u32) -> Result<()> {
        if token < self.vocab_size {
            Ok(())
        } else {
            Err(Error::TokenOutOfVocabulary {
                token,
                vocab_size: self.vocab_size,
            })
        }
    }

    /// The 64-bit seed (ChaCha nonce) of a decision: the PRF input besides the token, and so the
    /// identity of a (window, token) tuple for deduplication. `window` holds exactly
    /// `context_width` in-vocabulary tokens.
    #[inline]
    pub(crate) fn seed(&self, window: &[u32], token: u32) -> u64 {
        match &self.tables {
            None => {
                let mut z = self.tag;
                for &t in window {
                    z = mix64(z ^ u64::from(t));
                }
                z
            }
            Some(tables) => {
                let anchor = window
                    .iter()
                    .map(|&t| tables.token_hash[t as usize])
                    .fold(tables.token_hash[token as usize], u32::min);
                self.anchor_seed(anchor)
            }
        }
    }

    /// The seed of a window that a token-independent pass can share: the previous-token seed,
    /// or the self-seeded anchor of the context alone (with the anchor hash, for comparison).
    #[inline]
    pub(crate) fn window_seed(&self, window: &[u32]) -> u64 {
        match &self.tables {
            None => self.seed(window, 0),
            Some(tables) => {
                let anchor = window
                    .iter()
                    .map(|&t| tables.token_hash[t as usize])
                    .fold(u32::MAX, u32::min);
                self.anchor_seed(anchor)
            }
        }
    }

    #[inline]
    fn anchor_seed(&self, anchor: u32) -> u64 {
        mix64(self.tag ^ u64::from(anchor))
    }

    /// Whether a 16-bit value is green.
    #[inline]
    pub(crate) fn is_green_value(&self, value: u16) -> bool {
        u32::from(value) < self.threshold
    }

    /// The 16-bit value of one (seed, token).
    pub(crate) fn value(&self, seed: u64, token: u32) -> u16 {
        self.values(&[seed; LANES], &[token; LANES])[0]
    }

    /// The 16-bit values of `LANES` (seed, token) pairs in one vectorised PRF call.
    #[inline]
    pub(crate) fn values(&self, seeds: &[u64; LANES], tokens: &[u32; LANES]) -> [u16; LANES] {
        let counters = tokens.map(|t| u64::from(t / TOKENS_PER_BLOCK));
        let out = self.prf.blocks(seeds, &counters);
        std::array::from_fn(|l| {
            let t = tokens[l] % TOKENS_PER_BLOCK;
            let word = out[(t / 2) as usize][l];
            (word >> (16 * (t % 2))) as u16
        })
    }

    /// Adds δ to every green entry of `row[..vocab_size]` after `window` (exactly
    /// `context_width` in-vocabulary tokens). Entries past the vocabulary are left alone.
    ///
    /// Dispatches to AVX-512 / AVX2 builds of the same loop when the CPU has them: the loop is
    /// branch-free (a select per logit), so it vectorises, and the PRF inlines into it.
    pub(crate) fn bias_row_unchecked(&self, window: &[u32], row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vl") {
                // SAFETY: the CPU supports AVX-512F/VL, checked just above.
                return unsafe { self.bias_row_avx512(window, row) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { self.bias_row_avx2(window, row) };
            }
        }
        self.bias_row_portable(window, row)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn bias_row_avx512(&self, window: &[u32], row: &mut [f32]) {
        self.bias_row_portable(window, row)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn bias_row_avx2(&self, window: &[u32], row: &mut [f32]) {
        self.bias_row_portable(window, row)
    }

    #[inline(always)]
    fn bias_row_portable(&self, window: &[u32], row: &mut [f32]) {
        const PER_CALL: usize = TOKENS_PER_BLOCK as usize * LANES;
        let delta = self.scheme.delta;
        let threshold = self.threshold;
        let row = &mut row[..self.vocab_size as usize];
        let anchor = self.tables.as_ref().map(|tables| {
            let a = window
                .iter()
                .map(|&t| tables.token_hash[t as usize])
                .fold(u32::MAX, u32::min);
            (tables, a)
        });
        // The context's anchor decides both the shared stream and which tokens anchor themselves.
        let seed = match anchor {
            Some((_, a)) => self.anchor_seed(a),
            None => self.window_seed(window),
        };
        let mut values = [0u16; PER_CALL];
        for (chunk_index, chunk) in row.chunks_mut(PER_CALL).enumerate() {
            let first_block = (chunk_index * LANES) as u64;
            let counters: [u64; LANES] = std::array::from_fn(|l| first_block + l as u64);
            let out = crate::prf::blocks_portable(self.prf.key_words(), &[seed; LANES], &counters);
            // Token order: lane l covers tokens 32l..32l+32, two per word, low half first.
            for (lane, lane_values) in values
                .chunks_exact_mut(TOKENS_PER_BLOCK as usize)
                .enumerate()
            {
                for (w, pair) in lane_values.chunks_exact_mut(2).enumerate() {
                    let word = out[w][lane];
                    pair[0] = word as u16;
                    pair[1] = (word >> 16) as u16;
                }
            }
            let values = &mut values[..chunk.len()];
            if let Some((tables, a)) = anchor {
                let base = chunk_index * PER_CALL;
                let hashes = &tables.token_hash[base..base + chunk.len()];
                let own = &tables.self_value[base..base + chunk.len()];
                for ((v, &h), &o) in values.iter_mut().zip(hashes).zip(own) {
                    // Bit-mask select rather than `if`: the condition is random, and this form
                    // vectorises where the branchy one stayed scalar.
                    let own_mask = u16::from(h < a).wrapping_neg();
                    *v = (o & own_mask) | (*v & !own_mask);
                }
            }
            for (logit, &v) in chunk.iter_mut().zip(values.iter()) {
                *logit = if u32::from(v) < threshold {
                    *logit + delta
                } else {
                    *logit
                };
            }
        }
    }

    fn build_self_tables(&self) -> SelfTables {
        let vocab = self.vocab_size as usize;
        let mut token_hash = vec![0u32; vocab];
        // Token hashes: 16 per block of the reserved token-hash stream.
        for (chunk_index, chunk) in token_hash.chunks_mut(16 * LANES).enumerate() {
            let counters: [u64; LANES] =
                std::array::from_fn(|l| TOKEN_HASH_COUNTER_BASE + (chunk_index * LANES + l) as u64);
            let out = self.prf.blocks(&[TOKEN_HASH_NONCE; LANES], &counters);
            for (i, h) in chunk.iter_mut().enumerate() {
                *h = out[i % 16][i / 16];
            }
        }
        let mut self_value = vec![0u16; vocab];
        for (chunk_index, chunk) in self_value.chunks_mut(LANES).enumerate() {
            let tokens: [u32; LANES] =
                std::array::from_fn(|l| ((chunk_index * LANES + l).min(vocab - 1)) as u32);
            let seeds = tokens.map(|t| self.anchor_seed(token_hash[t as usize]));
            let values = self.values(&seeds, &tokens);
            chunk.copy_from_slice(&values[..chunk.len()]);
        }
        SelfTables {
            token_hash,
            self_value,
        }
    }
}

/// SplitMix64's finaliser: a bijection on u64, so a one-token window maps to a distinct seed.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes(std::array::from_fn(|i| i as u8))
    }

    fn scheme(seeding: Seeding, width: usize) -> Scheme {
        Scheme {
            seeding,
            width,
            ..Scheme::default()
        }
    }

    #[test]
    fn row_pass_agrees_with_single_decisions() {
        for s in [
            scheme(Seeding::Previous, 1),
            scheme(Seeding::Previous, 3),
            scheme(Seeding::SelfSeeded, 4),
        ] {
            let green = GreenList::new(&key(), s, 1000).unwrap();
            let context = [5u32, 17, 999, 42];
            let window = &context[context.len() - green.scheme().context_width()..];
            let mut row = vec![0.0f32; 1003];
            green.bias_row_unchecked(window, &mut row);
            for t in 0..1000u32 {
                let g = green.is_green(&context, t).unwrap().unwrap();
                assert_eq!(row[t as usize] == 2.0, g, "token {t}");
            }
            assert_eq!(&row[1000..], &[0.0; 3]);
        }
    }

    #[test]
    fn green_fraction_is_gamma() {
        let green = GreenList::new(&key(), Scheme::default(), 50_000).unwrap();
        let mut row = vec![0.0f32; 50_000];
        green.bias_row_unchecked(&[1, 2], &mut row);
        let n = row.iter().filter(|&&x| x > 0.0).count();
        // Binomial(50000, 0.25): sd ~ 97; 5 sd.
        assert!((n as i64 - 12_500).abs() < 485, "{n}");
    }

    #[test]
    fn invalid_schemes_are_refused() {
        assert!(GreenList::new(&key(), scheme(Seeding::SelfSeeded, 1), 10).is_err());
        assert!(GreenList::new(&key(), scheme(Seeding::Previous, 9), 10).is_err());
        let bad_gamma = Scheme {
            gamma: 1.0,
            ..Scheme::default()
        };
        assert!(GreenList::new(&key(), bad_gamma, 10).is_err());
        assert!(GreenList::new(&key(), Scheme::default(), 0).is_err());
        let green = GreenList::new(&key(), Scheme::default(), 10).unwrap();
        assert!(matches!(
            green.is_green(&[1, 2], 10),
            Err(Error::TokenOutOfVocabulary { .. })
        ));
        assert_eq!(green.is_green(&[1], 3).unwrap(), None);
    }

    #[test]
    fn seeding_names_round_trip_and_match_the_profile_files() {
        for seeding in Seeding::ALL {
            assert_eq!(seeding.to_string().parse::<Seeding>().unwrap(), seeding);
            let quoted = format!("{:?}", seeding.name());
            assert_eq!(serde_json::to_string(&seeding).unwrap(), quoted);
        }
        assert_eq!(
            "self-seeded".parse::<Seeding>().unwrap(),
            Seeding::SelfSeeded
        );
        let err = "sideways".parse::<Seeding>().unwrap_err().to_string();
        assert!(err.contains("\"sideways\" is not \"previous\""), "{err}");
    }
}
