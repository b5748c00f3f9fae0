//! The sampling hook on plain slices: what an inference server calls between the model's
//! forward pass and its sampler. No tensor type needed (see `candle_hook` for candle).
//!
//! A row may be longer than the vocabulary (padded lm_heads: OPT 50265 vs 50272, Qwen 151665
//! vs 151936); the padding entries are never tokens, so they are left as they are. A row
//! shorter than the vocabulary means the profile belongs to another model, and is an error.

use crate::error::{Error, Result};
use crate::green::GreenList;

/// Adds δ to the logits of the green tokens after `context` (the prompt and every token
/// generated so far; only the last few matter). With too little context the row is left
/// unchanged, exactly as the detector leaves such a token unscored.
pub fn apply_watermark(green: &GreenList, context: &[u32], logits: &mut [f32]) -> Result<()> {
    check_row(green, logits.len())?;
    if let Some(window) = window(green, context)? {
        green.bias_row_unchecked(window, logits);
    }
    Ok(())
}

/// [`apply_watermark`] on a flat row-major `B x V` buffer with one context per row.
pub fn apply_watermark_batch<C: AsRef<[u32]>>(
    green: &GreenList,
    contexts: &[C],
    logits: &mut [f32],
) -> Result<()> {
    if contexts.is_empty() {
        return if logits.is_empty() {
            Ok(())
        } else {
            Err(Error::BatchShape(format!(
                "{} logits but no contexts",
                logits.len()
            )))
        };
    }
    if !logits.len().is_multiple_of(contexts.len()) {
        return Err(Error::BatchShape(format!(
            "{} logits do not split into {} equal rows",
            logits.len(),
            contexts.len()
        )));
    }
    let row_len = logits.len() / contexts.len();
    check_row(green, row_len)?;
    for (context, row) in contexts.iter().zip(logits.chunks_exact_mut(row_len)) {
        if let Some(window) = window(green, context.as_ref())? {
            green.bias_row_unchecked(window, row);
        }
    }
    Ok(())
}

/// The candidate form, for engines that sample from a shortlist (top-k / top-p) rather than the
/// full row: adds δ to each green candidate. Each biased value is bit-identical to the same
/// entry of the full biased row.
///
/// To sample *exactly* as "bias the full row, then keep the top k", the shortlist must hold
/// every token whose raw logit is at least the k-th largest raw logit minus δ: a red token can
/// fall out of the top k and a green one climb in by at most δ. [`shortlist_margin`] gives δ.
pub fn apply_watermark_candidates(
    green: &GreenList,
    context: &[u32],
    token_ids: &[u32],
    logits: &mut [f32],
) -> Result<()> {
    if token_ids.len() != logits.len() {
        return Err(Error::BatchShape(format!(
            "{} candidate ids but {} logits",
            token_ids.len(),
            logits.len()
        )));
    }
    for &t in token_ids {
        green.check_token(t)?;
    }
    let Some(window) = window(green, context)? else {
        return Ok(());
    };
    let delta = green.scheme().delta;
    let lanes = crate::prf::LANES;
    let seeds: Vec<u64> = token_ids.iter().map(|&t| green.seed(window, t)).collect();
    for start in (0..token_ids.len()).step_by(lanes) {
        let end = (start + lanes).min(token_ids.len());
        let s: [u64; crate::prf::LANES] = std::array::from_fn(|l| seeds[(start + l).min(end - 1)]);
        let t: [u32; crate::prf::LANES] =
            std::array::from_fn(|l| token_ids[(start + l).min(end - 1)]);
        let values = green.values(&s, &t);
        for (l, logit) in logits[start..end].iter_mut().enumerate() {
            if green.is_green_value(values[l]) {
                *logit += delta;
            }
        }
    }
    Ok(())
}

/// How far below the k-th largest raw logit a shortlist must reach for the candidate form to
/// equal biasing the full row and then truncating: δ.
pub fn shortlist_margin(green: &GreenList) -> f32 {
    green.scheme().delta
}

fn check_row(green: &GreenList, len: usize) -> Result<()> {
    if len < green.vocab_size() as usize {
        return Err(Error::RowTooShort {
            len,
            vocab_size: green.vocab_size(),
        });
    }
    Ok(())
}

/// The last `context_width` tokens, validated; `None` when there are fewer.
pub(crate) fn window<'c>(green: &GreenList, context: &'c [u32]) -> Result<Option<&'c [u32]>> {
    let need = green.scheme().context_width();
    if context.len() < need {
        return Ok(None);
    }
    let window = &context[context.len() - need..];
    for &t in window {
        green.check_token(t)?;
    }
    Ok(Some(window))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Scheme, SecretKey, Seeding};
    use proptest::prelude::*;

    pub(crate) const VOCAB: u32 = 300;

    pub(crate) fn green(seeding: Seeding, width: usize) -> GreenList {
        let scheme = Scheme {
            seeding,
            width,
            ..Scheme::default()
        };
        GreenList::new(&SecretKey::from_bytes([7; 32]), scheme, VOCAB).unwrap()
    }

    /// Every seeding at small widths; shared with the candle adapter's tests.
    pub(crate) fn schemes() -> impl Strategy<Value = GreenList> {
        prop_oneof![
            (1usize..=4).prop_map(|w| green(Seeding::Previous, w)),
            (2usize..=4).prop_map(|w| green(Seeding::SelfSeeded, w)),
        ]
    }

    fn row(len: usize) -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(-20.0f32..20.0, len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn batch_equals_rows(
            g in schemes(),
            contexts in prop::collection::vec(prop::collection::vec(0..VOCAB, 0..6), 1..5),
            pad in 0usize..9,
            seed_row in row(VOCAB as usize + 8),
        ) {
            let row_len = VOCAB as usize + pad;
            let mut batch: Vec<f32> = contexts.iter().flat_map(|_| seed_row[..row_len].to_vec()).collect();
            apply_watermark_batch(&g, &contexts, &mut batch).unwrap();
            for (c, got) in contexts.iter().zip(batch.chunks_exact(row_len)) {
                let mut want = seed_row[..row_len].to_vec();
                apply_watermark(&g, c, &mut want).unwrap();
                prop_assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
            }
        }

        #[test]
        fn candidates_equal_full_row_then_top_k(
            g in schemes(),
            context in prop::collection::vec(0..VOCAB, 0..6),
            raw in row(VOCAB as usize),
            k in 1usize..40,
        ) {
            // Full row, biased, then the top k.
            let mut full = raw.clone();
            apply_watermark(&g, &context, &mut full).unwrap();
            let want = top_k(&(0..VOCAB).collect::<Vec<_>>(), &full, k);
            // Shortlist of raw logits within the margin of the k-th largest, biased, then top k.
            let mut sorted = raw.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let cut = sorted[k - 1] - shortlist_margin(&g);
            let ids: Vec<u32> = (0..VOCAB).filter(|&t| raw[t as usize] >= cut).collect();
            let mut cand: Vec<f32> = ids.iter().map(|&t| raw[t as usize]).collect();
            apply_watermark_candidates(&g, &context, &ids, &mut cand).unwrap();
            prop_assert_eq!(top_k(&ids, &cand, k), want);
        }
    }

    fn top_k(ids: &[u32], logits: &[f32], k: usize) -> Vec<(u32, u32)> {
        let mut pairs: Vec<(u32, f32)> = ids.iter().copied().zip(logits.iter().copied()).collect();
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs.truncate(k);
        pairs.into_iter().map(|(t, x)| (t, x.to_bits())).collect()
    }

    #[test]
    fn short_rows_and_bad_shapes_are_errors() {
        let g = green(Seeding::Previous, 2);
        let mut short = vec![0.0; VOCAB as usize - 1];
        assert!(matches!(
            apply_watermark(&g, &[1, 2], &mut short),
            Err(Error::RowTooShort { .. })
        ));
        let mut odd = vec![0.0; 2 * VOCAB as usize + 1];
        assert!(matches!(
            apply_watermark_batch(&g, &[[1u32, 2], [3, 4]], &mut odd),
            Err(Error::BatchShape(_))
        ));
        let mut one = vec![0.0; 1];
        assert!(apply_watermark_candidates(&g, &[1, 2], &[VOCAB], &mut one).is_err());
        let mut row = vec![0.0; VOCAB as usize];
        assert!(matches!(
            apply_watermark(&g, &[1, VOCAB], &mut row),
            Err(Error::TokenOutOfVocabulary { .. })
        ));
    }

    #[test]
    fn too_little_context_leaves_the_row_alone() {
        let g = green(Seeding::Previous, 3);
        let mut row = vec![1.5f32; VOCAB as usize];
        apply_watermark(&g, &[1, 2], &mut row).unwrap();
        assert!(row.iter().all(|&x| x == 1.5));
    }
}
