//! The exact test every verdict rests on: G green out of N distinct scored tuples against
//! Binomial(N, γ).

use serde::Serialize;

use crate::stats;

/// The test statistics of `green` out of `scored` tuples: everything a verdict rests on.
/// Scores of disjoint shards add up: merge by summing counts and calling [`Score::new`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Score {
    /// Distinct tuples scored (N).
    pub scored: u64,
    /// Green among them (G).
    pub green: u64,
    /// The effective γ the test uses.
    pub gamma: f64,
    /// G / N (0 when N = 0).
    pub green_fraction: f64,
    /// (G − Nγ) / sqrt(Nγ(1−γ)).
    pub z_score: f64,
    /// P(Binomial(N, γ) ≥ G); 0.0 when it underflows f64, see `log10_p_value`.
    pub p_value: f64,
    /// log10 of the exact p-value, never clamped.
    pub log10_p_value: f64,
}

impl Score {
    /// Exact statistics of `green` out of `scored` at green probability `gamma`.
    pub fn new(scored: u64, green: u64, gamma: f64) -> Self {
        let log10_p_value = stats::binomial_log10_sf(scored, green, gamma);
        Score {
            scored,
            green,
            gamma,
            green_fraction: if scored == 0 {
                0.0
            } else {
                green as f64 / scored as f64
            },
            z_score: stats::z_score(scored, green, gamma),
            p_value: stats::p_from_log10(log10_p_value),
            log10_p_value,
        }
    }

    /// Whether the p-value is at most `fpr` (compared in log space). Any level may be asked
    /// about here; a verdict's rate is an [`Fpr`](crate::Fpr).
    pub fn is_significant(&self, fpr: f64) -> bool {
        self.scored > 0 && self.log10_p_value <= fpr.log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_scored_is_never_significant() {
        let empty = Score::new(0, 0, 0.25);
        assert_eq!(empty.green_fraction, 0.0);
        assert!(!empty.is_significant(0.5));
        let all_green = Score::new(100, 100, 0.25);
        assert!(all_green.is_significant(1e-6));
        assert!((all_green.log10_p_value - 100.0 * 0.25f64.log10()).abs() < 1e-9);
        assert_eq!(all_green.green_fraction, 1.0);
    }
}
