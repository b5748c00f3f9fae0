//! The detector: which tokens are green, and how unlikely that many would be without the key.
//!
//! Each token is green, red, or left out with a reason. The test is exact: under the null
//! hypothesis (text written without the key) every *distinct* PRF input is green independently
//! with probability γ, so the green count of N distinct scored tuples is Binomial(N, γ) and the
//! p-value is its upper tail. Two rules keep that hypothesis true on real text:
//! - a (seed, token) tuple is scored once: repeated phrases would otherwise count the same coin
//!   flip many times (Fernandez et al., "Three Bricks");
//! - a token whose window also seeds a position inside the prompt is not scored: a model copying
//!   from a watermarked prompt reproduces its green tokens without having been watermarked.

use serde::Serialize;

use crate::dedup::TupleSet;
use crate::error::{Error, Result};
use crate::fpr::Fpr;
use crate::green::GreenList;
use crate::scan::{check_tokens, classify, Rules, Tally};
use crate::scan::{ReportHeader, Skipped, TokenStatus};
use crate::score::Score;
use crate::stats;

/// Smallest window, in scored tokens, that windowed detection tries.
pub const MIN_WINDOW: usize = 32;

/// What the detector does beyond the plain test.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectOptions {
    /// False-positive rate at which `watermarked` is decided.
    pub fpr: Fpr,
    /// Score each (seed, token) tuple once. Turning this off invalidates the p-value on any text
    /// with repeated phrases; it exists to demonstrate that.
    pub deduplicate: bool,
    /// Also search windows of the text for a watermarked passage (see [`Windowed`]).
    pub windowed: bool,
    /// Return each token's status.
    pub per_token: bool,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            fpr: Fpr::DEFAULT,
            deduplicate: true,
            windowed: false,
            per_token: false,
        }
    }
}

/// The best window of a text, for a watermarked passage pasted into unwatermarked text.
///
/// Windows of 32, 64, 128, … scored tokens (and the whole text) start every half window; the
/// smallest p-value among them is multiplied by the number of windows tried (Bonferroni). The
/// correction holds whatever the dependence between windows, so windowed detection flags
/// unwatermarked text at most at the nominal rate: it cannot manufacture false positives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Windowed {
    /// First token (index into the scored text) of the best window.
    pub start: usize,
    /// One past its last token.
    pub end: usize,
    /// The best window's own statistics, before correction.
    pub score: Score,
    /// Windows tried (the Bonferroni factor).
    pub windows_tried: u64,
    /// log10 of the corrected p-value: min(0, log10 p + log10 windows_tried).
    pub corrected_log10_p_value: f64,
    /// The verdict on the corrected p-value.
    pub watermarked: bool,
}

/// Everything `tracemark detect --json` reports for one document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Key, tokens in the text (prompt excluded), the plain test and its verdict.
    #[serde(flatten)]
    pub header: ReportHeader,
    /// Tokens left out, by reason (written as the three reasons detection has).
    #[serde(serialize_with = "Skipped::serialize_detection_reasons")]
    pub ignored: Skipped,
    /// The windowed search, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windowed: Option<Windowed>,
    /// Each token's status, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_statuses: Option<Vec<TokenStatus>>,
}

/// Scores `tokens`, the text written after `prompt` (pass `&[]` when there is none).
pub fn detect(
    green: &GreenList,
    prompt: &[u32],
    tokens: &[u32],
    options: &DetectOptions,
) -> Result<Detection> {
    let mut seen = TupleSet::with_capacity(if options.deduplicate { tokens.len() } else { 0 });
    detect_with(green, prompt, tokens, options, &mut seen)
}

/// [`detect`] for one document of a corpus in which each tuple must count once across all the
/// documents: tuples already in `seen` are "repeated", and the ones scored here are added.
///
/// Documents that share phrases share tuples, and so their p-values are dependent; with a set
/// shared across the corpus, no two documents score the same tuple and their p-values are
/// independent (what a pooled audit or a null calibration over many documents needs).
pub fn detect_in_corpus(
    green: &GreenList,
    prompt: &[u32],
    tokens: &[u32],
    options: &DetectOptions,
    seen: &mut TupleSet,
) -> Result<Detection> {
    detect_with(green, prompt, tokens, options, seen)
}

fn detect_with(
    green: &GreenList,
    prompt: &[u32],
    tokens: &[u32],
    options: &DetectOptions,
    seen: &mut TupleSet,
) -> Result<Detection> {
    if tokens.is_empty() {
        return Err(Error::EmptyInput("no tokens to score".into()));
    }
    check_tokens(green, &[prompt, tokens])?;
    let rules = Rules {
        deduplicate: options.deduplicate,
        exclude_prompt: true,
        exclude_earlier: false,
        filter: None,
        unaligned: None,
    };
    let statuses = classify(green, prompt, tokens, tokens, rules, seen);
    let mut tally = Tally::default();
    tally.add(&statuses);
    let windowed = options.windowed.then(|| {
        let gamma = green.scheme().effective_gamma();
        best_window(&scored_marks(&statuses), tokens.len(), gamma, options.fpr)
    });
    Ok(Detection {
        header: ReportHeader::new(green, tokens.len() as u64, &tally, options.fpr),
        ignored: tally.skipped,
        windowed,
        token_statuses: options.per_token.then_some(statuses),
    })
}

/// (token index, green) of each scored token, for the windowed search.
fn scored_marks(statuses: &[TokenStatus]) -> Vec<(usize, bool)> {
    statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            TokenStatus::Green => Some((i, true)),
            TokenStatus::Red => Some((i, false)),
            _ => None,
        })
        .collect()
}

/// The windowed search over the scored tokens (see [`Windowed`]).
fn best_window(marks: &[(usize, bool)], n_tokens: usize, gamma: f64, fpr: Fpr) -> Windowed {
    let n = marks.len();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0u64);
    for &(_, g) in marks {
        prefix.push(prefix[prefix.len() - 1] + u64::from(g));
    }
    let mut sizes: Vec<usize> = std::iter::successors(Some(MIN_WINDOW), |w| Some(w * 2))
        .take_while(|&w| w < n)
        .collect();
    sizes.push(n);
    let mut tried = 0u64;
    let mut best = (0usize, n, Score::new(n as u64, prefix[n], gamma));
    for &w in &sizes {
        let stride = (w / 2).max(1);
        let mut start = 0;
        while start + w <= n {
            tried += 1;
            let g = prefix[start + w] - prefix[start];
            let score = Score::new(w as u64, g, gamma);
            if score.log10_p_value < best.2.log10_p_value {
                best = (start, start + w, score);
            }
            start += stride;
        }
    }
    let tried = tried.max(1);
    let corrected = stats::bonferroni_log10(best.2.log10_p_value, tried);
    // Report token positions, not scored-token indices.
    let (start, end) = if n == 0 {
        (0, n_tokens)
    } else {
        (marks[best.0].0, marks[best.1 - 1].0 + 1)
    };
    Windowed {
        start,
        end,
        score: best.2,
        windows_tried: tried,
        corrected_log10_p_value: corrected,
        watermarked: n > 0 && corrected <= fpr.log10(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Scheme, SecretKey, Seeding};

    /// A green list over 1000 tokens; shared with the audit's tests.
    pub(crate) fn green(seeding: Seeding, width: usize) -> GreenList {
        let scheme = Scheme {
            seeding,
            width,
            ..Scheme::default()
        };
        GreenList::new(&SecretKey::from_bytes([3; 32]), scheme, 1000).unwrap()
    }

    #[test]
    fn statuses_follow_the_rules() {
        let g = green(Seeding::Previous, 2);
        let opts = DetectOptions {
            per_token: true,
            ..DetectOptions::default()
        };
        // Tokens 0,1 lack context; (1,2)->3 then (1,2)->3 again repeats.
        let d = detect(&g, &[], &[1, 2, 3, 9, 1, 2, 3], &opts).unwrap();
        let st = d.token_statuses.unwrap();
        assert_eq!(st[0], TokenStatus::TooLittleContext);
        assert_eq!(st[1], TokenStatus::TooLittleContext);
        assert_eq!(st[6], TokenStatus::Repeated);
        assert_eq!(
            d.ignored,
            Skipped {
                too_little_context: 2,
                repeated: 1,
                ..Skipped::default()
            }
        );
        assert_eq!(d.header.score.scored, 4);
        // With a prompt: context comes from it, and windows seen inside it are excluded.
        let d = detect(&g, &[5, 6, 7], &[5, 6, 8, 4], &opts).unwrap();
        let st = d.token_statuses.unwrap();
        assert_ne!(st[0], TokenStatus::TooLittleContext);
        // Token 8 follows window (5, 6), which precedes 7 in the prompt.
        assert_eq!(st[2], TokenStatus::InPrompt);
        for (i, s) in st.iter().enumerate() {
            if matches!(s, TokenStatus::Green | TokenStatus::Red) {
                let context: Vec<u32> = [5, 6, 7, 5, 6, 8, 4][..3 + i].to_vec();
                let want = g.is_green(&context, [5, 6, 8, 4][i]).unwrap().unwrap();
                assert_eq!(*s == TokenStatus::Green, want);
            }
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let g = green(Seeding::SelfSeeded, 3);
        let opts = DetectOptions::default();
        assert!(matches!(
            detect(&g, &[], &[], &opts),
            Err(Error::EmptyInput(_))
        ));
        assert!(matches!(
            detect(&g, &[], &[1, 1000], &opts),
            Err(Error::TokenOutOfVocabulary { .. })
        ));
    }

    #[test]
    fn windowed_finds_a_green_passage_and_reports_it() {
        let g = green(Seeding::Previous, 1);
        // A text whose middle is all green: choose each next token green after the previous.
        let mut text: Vec<u32> = (0..400).map(|i| (i * 7919 % 1000) as u32).collect();
        for i in 150..250 {
            let prev = text[i - 1];
            let t = (0..1000u32)
                .find(|&t| g.is_green(&[prev], t).unwrap().unwrap() && !text[..i].contains(&t))
                .unwrap();
            text[i] = t;
        }
        let opts = DetectOptions {
            windowed: true,
            ..DetectOptions::default()
        };
        let d = detect(&g, &[], &text, &opts).unwrap();
        let w = d.windowed.unwrap();
        assert!(w.watermarked);
        assert!(w.start >= 120 && w.end <= 280, "{w:?}");
        assert!(w.corrected_log10_p_value > w.score.log10_p_value);
    }
}
