//! The account signal at generation: the account's uniforms and the exponential-minimum draw.
//!
//! For a token t after a window with seed s (the master green list's seed, so that the
//! account's tuples are the master's tuples), the account PRF gives a 64-bit value, of which the
//! top 52 bits make u(s, t) = (m + 1/2) / 2^52 in (0, 1). Among the candidates with
//! probabilities p_i, the drawn token minimises −ln(u_i) / p_i (equivalently maximises
//! u_i^(1/p_i)): for independent uniforms it is token i with probability exactly p_i, so the
//! account changes which random numbers are used, never the distribution.

use crate::error::{Error, Result};
use crate::green::GreenList;
use crate::hook::window;
use crate::prf::LANES;
use crate::sampler::{argmax, kept_candidates, Sampling};

use super::key::AccountKey;

/// Tokens per ChaCha block in the account stream: 64 bits each.
const TOKENS_PER_BLOCK: u32 = 8;
/// 2^-52: the spacing of the uniforms.
const UNIT: f64 = 1.0 / (1u64 << 52) as f64;
/// −ln of the largest uniform, 1 − 2^-53: no candidate's key can be smaller than this over its
/// probability, which lets the draw stop early on a sorted row.
const MIN_NEG_LN_U: f64 = 1.110_223_024_625_156_5e-16;

impl AccountKey {
    /// The uniforms u(s, t) of `LANES` (seed, token) tuples in one vectorised PRF call.
    pub(crate) fn uniforms(&self, seeds: &[u64; LANES], tokens: &[u32; LANES]) -> [f64; LANES] {
        let counters = tokens.map(|t| u64::from(t / TOKENS_PER_BLOCK));
        let out = self.prf().blocks(seeds, &counters);
        std::array::from_fn(|l| {
            let w = 2 * (tokens[l] % TOKENS_PER_BLOCK) as usize;
            let bits = u64::from(out[w][l]) | (u64::from(out[w + 1][l]) << 32);
            ((bits >> 12) as f64 + 0.5) * UNIT
        })
    }

    /// The uniform of one (seed, token) tuple.
    pub(crate) fn uniform(&self, seed: u64, token: u32) -> f64 {
        self.uniforms(&[seed; LANES], &[token; LANES])[0]
    }

    /// The account's seed and uniform for `token` after `context` (only the last few tokens
    /// matter), as the spec's test vectors state them; `None` with too little context.
    pub fn uniform_after(
        &self,
        green: &GreenList,
        context: &[u32],
        token: u32,
    ) -> Result<Option<(u64, f64)>> {
        green.check_token(token)?;
        Ok(window(green, context)?.map(|w| {
            let seed = green.context_chain_seed(w);
            (seed, self.uniform(seed, token))
        }))
    }

    /// Adds each tuple's score −ln(1 − u) to a running sum: the account's test statistic.
    pub(crate) fn add_scores(&self, tuples: &[(u64, u32)], sum: &mut f64) {
        for chunk in tuples.chunks(LANES) {
            let last = chunk.len() - 1;
            let seeds: [u64; LANES] = std::array::from_fn(|l| chunk[l.min(last)].0);
            let tokens: [u32; LANES] = std::array::from_fn(|l| chunk[l.min(last)].1);
            let u = self.uniforms(&seeds, &tokens);
            for &ul in &u[..chunk.len()] {
                *sum += token_score(ul);
            }
        }
    }
}

/// A scored token's contribution: −ln(1 − u), Exp(1) under the null (1 − u is exact in f64).
#[inline]
pub(crate) fn token_score(u: f64) -> f64 {
    -(1.0 - u).ln()
}

/// The account's draw among `candidates` with unnormalised probabilities `weights` (after the
/// engine's own temperature and truncation): the candidate minimising −ln(u) / w. This is the
/// hook form, for engines with their own sampler.
///
/// Returns `None` with too little context (the detector does not score that token either): the
/// engine draws with its own randomness then. Candidates in decreasing weight order are drawn
/// faster (the search stops when no later candidate can win), any order gives the same token.
pub fn choose_by_exponential_minimum(
    account: &AccountKey,
    green: &GreenList,
    context: &[u32],
    candidates: &[u32],
    weights: &[f64],
) -> Result<Option<u32>> {
    if candidates.len() != weights.len() {
        return Err(Error::BatchShape(format!(
            "{} candidate ids but {} weights",
            candidates.len(),
            weights.len()
        )));
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return Err(Error::BadLogits("weights must be finite and non-negative"));
    }
    if !weights.iter().any(|&w| w > 0.0) {
        return Err(Error::BadLogits("no candidate has a positive weight"));
    }
    for &t in candidates {
        green.check_token(t)?;
    }
    let Some(window) = window(green, context)? else {
        return Ok(None);
    };
    let seed = green.context_chain_seed(window);
    let sorted = weights.windows(2).all(|w| w[0] >= w[1]);
    let mut best: Option<(f64, u32)> = None;
    for (ids, ws) in candidates.chunks(LANES).zip(weights.chunks(LANES)) {
        if let Some((key, _)) = best {
            // Sorted: every later weight is at most this one, so no later key beats `key`.
            if sorted && MIN_NEG_LN_U / ws[0] >= key {
                break;
            }
        }
        let last = ids.len() - 1;
        let tokens: [u32; LANES] = std::array::from_fn(|l| ids[l.min(last)]);
        let u = account.uniforms(&[seed; LANES], &tokens);
        for (l, (&t, &w)) in ids.iter().zip(ws).enumerate() {
            if w > 0.0 {
                let key = -u[l].ln() / w;
                if best.is_none_or(|(b, _)| key < b) {
                    best = Some((key, t));
                }
            }
        }
    }
    Ok(best.map(|(_, t)| t))
}

/// The account's token from a whole logits row (already biased by the hook), with the engine's
/// `sampling`: the candidates `WatermarkSampler` keeps (temperature, top-k, top-p), then
/// [`choose_by_exponential_minimum`]. So an engine that samples itself can draw exactly what the
/// sampler would draw with [`GreenList::with_account`], and force that token.
///
/// `Greedy` gives the argmax (it draws nothing, so it carries no account signal); `None` means
/// too little context, and the engine draws with its own randomness. Entries past the
/// vocabulary (a padded lm_head) are never drawn; a row shorter than the vocabulary, NaN, or
/// every logit −inf is an error.
pub fn draw_from_logits(
    account: &AccountKey,
    green: &GreenList,
    context: &[u32],
    logits: &[f32],
    sampling: Sampling,
) -> Result<Option<u32>> {
    let vocab = green.vocab_size() as usize;
    let row = logits.get(..vocab).ok_or(Error::RowTooShort {
        len: logits.len(),
        vocab_size: green.vocab_size(),
    })?;
    match sampling {
        Sampling::Greedy => argmax(row).map(Some),
        Sampling::Random {
            temperature,
            top_k,
            top_p,
        } => {
            if window(green, context)?.is_none() {
                return Ok(None);
            }
            let (ids, weights) = kept_candidates(row, temperature, top_k, top_p)?;
            choose_by_exponential_minimum(account, green, context, &ids, &weights)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scheme, SecretKey, Seeding};

    fn setup(seeding: Seeding) -> (GreenList, AccountKey) {
        let key = SecretKey::from_bytes([5; 32]);
        // Two context tokens either way, so that the tests' contexts give distinct windows.
        let width = if seeding == Seeding::Previous { 2 } else { 3 };
        let scheme = Scheme {
            seeding,
            width,
            ..Scheme::default()
        };
        let green = GreenList::new(&key, scheme, 1000).unwrap();
        (green, AccountKey::derive(&key, "acct").unwrap())
    }

    #[test]
    fn draws_follow_the_probabilities_exactly() {
        // 4 tokens with probabilities 0.4, 0.3, 0.2, 0.1 after 40000 distinct windows: each
        // count is Binomial(40000, p); 5 standard deviations is a 1-in-1.7-million miss.
        for seeding in [Seeding::Previous, Seeding::SelfSeeded] {
            let (green, account) = setup(seeding);
            let probs = [0.4, 0.3, 0.2, 0.1];
            let ids = [3u32, 17, 40, 63];
            let mut counts = [0f64; 4];
            let n = 40_000u32;
            for c in 0..n {
                let context = [c % 1000, c / 1000];
                let t = choose_by_exponential_minimum(&account, &green, &context, &ids, &probs)
                    .unwrap()
                    .unwrap();
                counts[ids.iter().position(|&i| i == t).unwrap()] += 1.0;
            }
            for (c, p) in counts.iter().zip(probs) {
                let sd = (p * (1.0 - p) / f64::from(n)).sqrt();
                let got = c / f64::from(n);
                assert!((got - p).abs() < 5.0 * sd, "{seeding:?} {counts:?}");
            }
        }
    }

    #[test]
    fn sorted_search_stops_early_and_agrees_with_the_full_search() {
        let (green, account) = setup(Seeding::Previous);
        let ids: Vec<u32> = (0..64).collect();
        let mut weights: Vec<f64> = (0..64).map(|i| (-(i as f64) * 0.7).exp()).collect();
        for c in 0..500u32 {
            let context = [c % 64, c / 64];
            let sorted =
                choose_by_exponential_minimum(&account, &green, &context, &ids, &weights).unwrap();
            // Same candidates in reverse (unsorted) order: the full search.
            let rev_ids: Vec<u32> = ids.iter().rev().copied().collect();
            weights.reverse();
            let full =
                choose_by_exponential_minimum(&account, &green, &context, &rev_ids, &weights)
                    .unwrap();
            weights.reverse();
            assert_eq!(sorted, full);
        }
    }

    #[test]
    fn the_row_draw_is_the_sampler_draw_with_the_account() {
        // The sampler biases and draws; the row draw gets the biased row. Same token always.
        let key = SecretKey::from_bytes([5; 32]);
        let green = GreenList::new(&key, Scheme::default(), 1000).unwrap();
        let account = AccountKey::derive(&key, "acct").unwrap();
        let with_account = green.clone().with_account(account.clone());
        let settings = [
            (1.0, None, None),
            (0.7, Some(40), None),
            (1.3, None, Some(0.9)),
        ];
        for (temperature, top_k, top_p) in settings {
            let sampling = Sampling::new(temperature, top_k, top_p).unwrap();
            let mut sampler = crate::WatermarkSampler::new(Some(with_account.clone()), sampling, 3);
            for c in 0..300u32 {
                let context = [c % 1000, (c * 7 + 1) % 1000];
                let logits: Vec<f32> = (0..1000u32)
                    .map(|i| ((i * 7919 + c * 104_729) % 1000) as f32 / 150.0)
                    .collect();
                let mut biased = logits.clone();
                crate::hook::apply_watermark(&green, &context, &mut biased).unwrap();
                let drawn = draw_from_logits(&account, &green, &context, &biased, sampling);
                let mut row = logits;
                let sampled = sampler.sample(&context, &mut row).unwrap();
                assert_eq!(drawn.unwrap(), Some(sampled), "{sampling:?} context {c}");
            }
        }
    }

    #[test]
    fn row_draw_edges() {
        let (green, account) = setup(Seeding::Previous);
        let t1 = Sampling::new(1.0, None, None).unwrap();
        // Padding past the vocabulary is never drawn, however large.
        let mut row = vec![0.0f32; 1010];
        row[1000..].fill(100.0);
        for c in 0..200u32 {
            let t = draw_from_logits(&account, &green, &[c, c + 1], &row, t1).unwrap();
            assert!(t.unwrap() < 1000);
        }
        let mut peaked = vec![0.0f32; 1000];
        peaked[17] = 5.0;
        let greedy = Sampling::new(0.0, None, None).unwrap();
        assert_eq!(
            draw_from_logits(&account, &green, &[], &peaked, greedy).unwrap(),
            Some(17)
        );
        assert_eq!(
            draw_from_logits(&account, &green, &[1], &peaked, t1).unwrap(),
            None
        );
        assert!(draw_from_logits(&account, &green, &[1, 2], &peaked[..999], t1).is_err());
        assert!(draw_from_logits(&account, &green, &[1, 2000], &peaked, t1).is_err());
        let mut nan = peaked.clone();
        nan[3] = f32::NAN;
        assert!(draw_from_logits(&account, &green, &[1, 2], &nan, t1).is_err());
        let dead = vec![f32::NEG_INFINITY; 1000];
        assert!(draw_from_logits(&account, &green, &[1, 2], &dead, t1).is_err());
    }

    #[test]
    fn bad_input_and_short_context() {
        let (green, account) = setup(Seeding::Previous);
        assert!(choose_by_exponential_minimum(&account, &green, &[1, 2], &[1], &[]).is_err());
        assert!(
            choose_by_exponential_minimum(&account, &green, &[1, 2], &[1], &[f64::NAN]).is_err()
        );
        assert!(choose_by_exponential_minimum(&account, &green, &[1, 2], &[1], &[0.0]).is_err());
        assert!(choose_by_exponential_minimum(&account, &green, &[1, 2], &[1000], &[1.0]).is_err());
        assert_eq!(
            choose_by_exponential_minimum(&account, &green, &[1], &[1], &[1.0]).unwrap(),
            None
        );
        let u = account.uniform(7, 9);
        assert!(u > 0.0 && u < 1.0);
        assert!(token_score(1.0 - 0.5 * UNIT).is_finite());
    }
}
