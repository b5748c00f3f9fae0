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

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

use crate::dedup::TupleSet;
use crate::error::{Error, Result};
use crate::fpr::Fpr;
use crate::green::{GreenList, Seeding, SPEC_VERSION};
use crate::prf::LANES;
use crate::stats;

pub use crate::fpr::DEFAULT_FPR;

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

/// One token's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Scored, and in the green list.
    Green,
    /// Scored, and not in the green list.
    Red,
    /// Not scored: fewer preceding tokens than the window needs.
    TooLittleContext,
    /// Not scored: its (seed, token) tuple was already scored earlier.
    Repeated,
    /// Not scored: its window also seeds a position inside the prompt.
    InPrompt,
    /// Not scored (reading mode): its window also seeds an earlier position of the text read.
    EarlierInText,
    /// Not scored (supervised audit): its window does not occur in the filter's texts.
    NotInFilter,
}

/// Tokens left out of the test, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Fewer preceding tokens than the window needs.
    pub too_little_context: u64,
    /// The tuple was already scored.
    pub repeated: u64,
    /// The window occurs in the prompt.
    pub in_prompt: u64,
}

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

    /// Whether the p-value is at most `fpr` (compared in log space).
    pub fn is_significant(&self, fpr: f64) -> bool {
        self.scored > 0 && self.log10_p_value <= fpr.log10()
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
    /// Version of the green-list function.
    pub spec: &'static str,
    /// Fingerprint of the key tested.
    pub key_fingerprint: String,
    /// Tokens in the text (prompt excluded).
    pub tokens: u64,
    /// The plain test over all scored tokens.
    #[serde(flatten)]
    pub score: Score,
    /// The false-positive rate of the verdict.
    pub fpr: Fpr,
    /// Verdict of the plain test at `fpr`.
    pub watermarked: bool,
    /// Tokens left out, by reason.
    pub ignored: Ignored,
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
    for &t in prompt.iter().chain(tokens) {
        green.check_token(t)?;
    }
    let rules = Rules {
        deduplicate: options.deduplicate,
        exclude_prompt: true,
        exclude_earlier: false,
        filter: None,
    };
    let statuses = classify(green, prompt, tokens, tokens, rules, seen);

    let mut ignored = Ignored::default();
    let mut green_count = 0u64;
    let mut scored_marks = Vec::new(); // (token index, green) of scored tokens, for windows
    for (i, s) in statuses.iter().enumerate() {
        match s {
            TokenStatus::Green | TokenStatus::Red => {
                let g = *s == TokenStatus::Green;
                green_count += u64::from(g);
                if options.windowed {
                    scored_marks.push((i, g));
                }
            }
            TokenStatus::TooLittleContext => ignored.too_little_context += 1,
            TokenStatus::Repeated => ignored.repeated += 1,
            // The last two cannot occur under these rules; counting them keeps the sum exact.
            TokenStatus::InPrompt | TokenStatus::EarlierInText | TokenStatus::NotInFilter => {
                ignored.in_prompt += 1
            }
        }
    }
    let scored =
        (statuses.len() as u64) - ignored.too_little_context - ignored.repeated - ignored.in_prompt;
    let gamma = green.scheme().effective_gamma();
    let score = Score::new(scored, green_count, gamma);
    let windowed = options
        .windowed
        .then(|| best_window(&scored_marks, tokens.len(), gamma, options.fpr));
    Ok(Detection {
        spec: SPEC_VERSION,
        key_fingerprint: green.key_fingerprint().to_string(),
        tokens: tokens.len() as u64,
        watermarked: score.is_significant(options.fpr.get()),
        score,
        fpr: options.fpr,
        ignored,
        windowed,
        token_statuses: options.per_token.then_some(statuses),
    })
}

/// Which tokens a pass leaves out, beyond those lacking context.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules<'a> {
    /// Score each (seed, token) tuple once (against `seen`).
    pub deduplicate: bool,
    /// Leave out a token whose seed also seeds a position inside the prompt.
    pub exclude_prompt: bool,
    /// Leave out a token whose seed also seeds an earlier position of the text (reading mode,
    /// where the text is ours and the scored token is the suspect's prediction).
    pub exclude_earlier: bool,
    /// Score only tokens whose seed is in this set (stored with token 0).
    pub filter: Option<&'a TupleSet>,
}

/// Each position's status, in order. `text` gives the windows (after `prompt`); `scored[i]` is
/// the token scored at position i (the text itself when detecting, the suspect's prediction in
/// reading mode). Tokens are already checked to be in the vocabulary.
///
/// Works in chunks of 64 tokens so that the deduplication lookups of a chunk overlap in memory
/// (see [`TupleSet::insert_batch`]) and the PRF runs on full vectors, with no per-token scratch.
pub(crate) fn classify(
    green: &GreenList,
    prompt: &[u32],
    text: &[u32],
    scored: &[u32],
    rules: Rules<'_>,
    seen: &mut TupleSet,
) -> Vec<TokenStatus> {
    const CHUNK: usize = 64;
    debug_assert_eq!(text.len(), scored.len());
    let need = green.scheme().context_width();
    let self_seeded = green.scheme().seeding == Seeding::SelfSeeded;
    let seed_at = |p: usize, token: u32| seed_at(green, prompt, text, p, token);
    // Seeds of the positions the suspect has already read: the prompt's, and (when excluding
    // earlier windows) the text's, added as the pass goes.
    let prompt_seeds: HashSet<u64, TupleHash> = if rules.exclude_prompt {
        (need..prompt.len())
            .map(|p| seed_at(p, prompt[p]))
            .collect()
    } else {
        HashSet::default()
    };
    let mut earlier_seeds: HashSet<u64, TupleHash> = HashSet::default();
    let mut statuses = vec![TokenStatus::TooLittleContext; text.len()];
    let mut tuples = [(0u64, 0u32); CHUNK];
    let mut index = [0usize; CHUNK];
    let mut fresh = [true; CHUNK];
    let first = need.saturating_sub(prompt.len()).min(text.len());
    for start in (first..text.len()).step_by(CHUNK) {
        let mut k = 0;
        for (i, &token) in scored.iter().enumerate().skip(start).take(CHUNK) {
            let p = prompt.len() + i;
            let seed = seed_at(p, token);
            let skip = if !prompt_seeds.is_empty() && prompt_seeds.contains(&seed) {
                Some(TokenStatus::InPrompt)
            } else if rules.exclude_earlier && earlier_seeds.contains(&seed) {
                Some(TokenStatus::EarlierInText)
            } else if rules.filter.is_some_and(|f| !f.contains(seed, 0)) {
                Some(TokenStatus::NotInFilter)
            } else {
                None
            };
            if rules.exclude_earlier {
                // What this position of our text seeds, for the positions after it.
                let own = if self_seeded && token != text[i] {
                    seed_at(p, text[i])
                } else {
                    seed
                };
                earlier_seeds.insert(own);
            }
            if let Some(status) = skip {
                statuses[i] = status;
                continue;
            }
            tuples[k] = (seed, token);
            index[k] = i;
            k += 1;
        }
        if rules.deduplicate {
            seen.insert_batch(&tuples[..k], &mut fresh[..k]);
        }
        // Keep the new tuples, in order, at the front.
        let mut m = 0;
        for j in 0..k {
            if fresh[j] {
                tuples[m] = tuples[j];
                index[m] = index[j];
                m += 1;
            } else {
                statuses[index[j]] = TokenStatus::Repeated;
            }
        }
        for (lane_tuples, lane_index) in tuples[..m].chunks(LANES).zip(index[..m].chunks(LANES)) {
            let last = lane_tuples.len() - 1;
            let seeds: [u64; LANES] = std::array::from_fn(|l| lane_tuples[l.min(last)].0);
            let toks: [u32; LANES] = std::array::from_fn(|l| lane_tuples[l.min(last)].1);
            let values = green.values(&seeds, &toks);
            for (l, &i) in lane_index.iter().enumerate() {
                statuses[i] = if green.is_green_value(values[l]) {
                    TokenStatus::Green
                } else {
                    TokenStatus::Red
                };
            }
        }
    }
    statuses
}

/// The seed of position `p` of prompt ++ text when `token` is the candidate there; `p` is at
/// least the context width.
#[inline]
pub(crate) fn seed_at(
    green: &GreenList,
    prompt: &[u32],
    text: &[u32],
    p: usize,
    token: u32,
) -> u64 {
    let need = green.scheme().context_width();
    let seed_of = |window: &[u32]| {
        if green.scheme().seeding == Seeding::SelfSeeded {
            green.seed(window, token)
        } else {
            green.window_seed(window)
        }
    };
    if p - need >= prompt.len() {
        seed_of(&text[p - need - prompt.len()..p - prompt.len()])
    } else {
        let mut window = [0u32; 8];
        for (j, w) in window[..need].iter_mut().enumerate() {
            *w = position(prompt, text, p - need + j);
        }
        seed_of(&window[..need])
    }
}

/// The token at position `p` of prompt ++ tokens.
#[inline]
fn position(prompt: &[u32], tokens: &[u32], p: usize) -> u32 {
    if p < prompt.len() {
        prompt[p]
    } else {
        tokens[p - prompt.len()]
    }
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

/// Hasher for (seed, token) tuples. Seeds are already outputs of a 64-bit mixer, so one
/// multiply-rotate spreads them; SipHash would cost more than the PRF here.
pub(crate) type TupleHash = BuildHasherDefault<TupleHasher>;

#[derive(Default)]
pub(crate) struct TupleHasher(u64);

impl Hasher for TupleHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(26);
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
            Ignored {
                too_little_context: 2,
                repeated: 1,
                in_prompt: 0
            }
        );
        assert_eq!(d.score.scored, 4);
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
