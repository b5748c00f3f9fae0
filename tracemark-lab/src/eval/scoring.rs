//! The statistics the sections share: detection of one text, and summaries over many.

use watermark_core::GreenList;
use watermark_core::{detect, DetectOptions, Score};

use super::generation::Generated;
use super::Result;

/// The false-positive rates the tables report.
pub(super) const FPR_1E3: f64 = 1e-3;
pub(super) const FPR_1E5: f64 = 1e-5;

/// Detection statistics of `tokens` after `prompt`; `None` for an empty text.
pub(super) fn score(green: &GreenList, prompt: &[u32], tokens: &[u32]) -> Result<Option<Score>> {
    if tokens.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        detect(green, prompt, tokens, &DetectOptions::default())?
            .header
            .score,
    ))
}

/// The share of `true`s (NaN when there are none).
pub(super) fn rate(hits: impl Iterator<Item = bool>) -> f64 {
    let (mut k, mut n) = (0usize, 0usize);
    for h in hits {
        k += usize::from(h);
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        k as f64 / n as f64
    }
}

/// The mean of the finite values (NaN when there are none).
pub(super) fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs.filter(|x| x.is_finite()) {
        s += x;
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// The median of the finite values (NaN when there are none).
pub(super) fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        0.5 * (xs[m - 1] + xs[m])
    }
}

/// z of a possibly missing score (an empty text counts as no evidence, z = 0).
pub(super) fn z_of(s: &Option<Score>) -> f64 {
    s.map_or(0.0, |s| s.z_score)
}

/// Whether a possibly missing score is significant at `fpr`.
pub(super) fn flagged(s: &Option<Score>, fpr: f64) -> bool {
    s.is_some_and(|s| s.is_significant(fpr))
}

/// The scores of each text's first `len` tokens after its prompt.
pub(super) fn scores_at(
    green: &GreenList,
    prompt_ids: &[Vec<u32>],
    texts: &[Generated],
    len: usize,
) -> Result<Vec<Option<Score>>> {
    prompt_ids
        .iter()
        .zip(texts)
        .map(|(p, x)| score(green, p, &x.tokens[..len.min(x.tokens.len())]))
        .collect()
}

/// The scores of whole texts read without a prompt, as an auditor sees them.
pub(super) fn scores_alone(green: &GreenList, texts: &[Generated]) -> Result<Vec<Option<Score>>> {
    texts.iter().map(|x| score(green, &[], &x.tokens)).collect()
}

/// The share flagged at `fpr`.
pub(super) fn tpr(scores: &[Option<Score>], fpr: f64) -> f64 {
    rate(scores.iter().map(|s| flagged(s, fpr)))
}

/// The share with z > 4 (Kirchenbauer et al.'s threshold).
pub(super) fn z_over_4(scores: &[Option<Score>]) -> f64 {
    rate(scores.iter().map(|s| z_of(s) > 4.0))
}

/// The mean z.
pub(super) fn mean_z(scores: &[Option<Score>]) -> f64 {
    mean(scores.iter().map(z_of))
}
