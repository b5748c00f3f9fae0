//! The scan: one pass over a text that gives each token its status, and the counts every
//! report is made of. Detection and the audit are thin layers over it and differ only in their
//! [`Rules`].
//!
//! A token is scored (green or red) unless a rule leaves it out, in this order:
//! - it has fewer preceding tokens than the window needs;
//! - (reading mode, a suspect with another tokenizer) there is no prediction to score there;
//! - its window also seeds a position the reader has already seen (the prompt; in reading mode
//!   also the earlier text), or it is outside a supervised audit's filter;
//! - its (seed, token) tuple was already scored (deduplication);
//!
//! and otherwise the keyed PRF decides green or red.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Serialize, Serializer};

use crate::dedup::TupleSet;
use crate::error::Result;
use crate::fpr::Fpr;
use crate::green::{GreenList, Seeding, SPEC_VERSION};
use crate::prf::LANES;
use crate::score::Score;

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
    /// Not scored (reading mode, another tokenizer): the suspect's prediction there does not
    /// map to exactly one of our tokens.
    Unaligned,
}

/// Tokens left out of a test, by reason: the one count type of detections and audits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Fewer preceding tokens than the window needs.
    pub too_little_context: u64,
    /// The (seed, token) tuple was already scored (in the document, the corpus or the audit).
    pub repeated: u64,
    /// The window also seeds a position of the prompt.
    pub in_prompt: u64,
    /// Reading mode: the window also seeds an earlier position of the text read.
    pub earlier_in_text: u64,
    /// Supervised audit: the window does not occur in our outputs.
    pub not_in_filter: u64,
    /// Reading mode with another tokenizer: no prediction of the suspect maps to one of our
    /// tokens there. Written only when some are, so that reports of every other audit keep
    /// their fields.
    #[serde(skip_serializing_if = "is_zero")]
    pub unaligned: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Skipped {
    fn count(&mut self, status: TokenStatus) {
        match status {
            TokenStatus::Green | TokenStatus::Red => {}
            TokenStatus::TooLittleContext => self.too_little_context += 1,
            TokenStatus::Repeated => self.repeated += 1,
            TokenStatus::InPrompt => self.in_prompt += 1,
            TokenStatus::EarlierInText => self.earlier_in_text += 1,
            TokenStatus::NotInFilter => self.not_in_filter += 1,
            TokenStatus::Unaligned => self.unaligned += 1,
        }
    }

    /// Every token left out.
    pub fn total(&self) -> u64 {
        self.too_little_context
            + self.repeated
            + self.in_prompt
            + self.earlier_in_text
            + self.not_in_filter
            + self.unaligned
    }

    /// The reasons detection has (its rules never read a text or a filter), as `tracemark detect
    /// --json` writes them under `ignored`: `too_little_context`, `repeated`, `in_prompt`.
    pub fn detection_reasons(&self) -> impl Serialize + '_ {
        #[derive(Serialize)]
        struct DetectionReasons {
            too_little_context: u64,
            repeated: u64,
            in_prompt: u64,
        }
        DetectionReasons {
            too_little_context: self.too_little_context,
            repeated: self.repeated,
            // The last three are zero under detection's rules; adding them keeps the sum exact.
            in_prompt: self.in_prompt + self.earlier_in_text + self.not_in_filter + self.unaligned,
        }
    }

    /// Serializes [`Skipped::detection_reasons`] (for `#[serde(serialize_with)]`).
    pub(crate) fn serialize_detection_reasons<S: Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.detection_reasons().serialize(serializer)
    }
}

/// What a scan adds up: the scored tuples, the green among them, and the tokens left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub scored: u64,
    pub green: u64,
    pub skipped: Skipped,
}

impl Tally {
    /// Adds the statuses of one pass.
    pub fn add(&mut self, statuses: &[TokenStatus]) {
        for &status in statuses {
            match status {
                TokenStatus::Green => {
                    self.scored += 1;
                    self.green += 1;
                }
                TokenStatus::Red => self.scored += 1,
                other => self.skipped.count(other),
            }
        }
    }

    /// The exact test of the counts so far.
    pub fn score(&self, green: &GreenList) -> Score {
        Score::new(self.scored, self.green, green.scheme().effective_gamma())
    }
}

/// What every report states first: the green-list function and key tested, the tokens read,
/// the exact test, and its verdict at the false-positive rate. Flattened into
/// [`Detection`](crate::Detection) and [`AuditReport`](crate::AuditReport), so both write the
/// same fields the same way.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportHeader {
    /// Version of the green-list function.
    pub spec: &'static str,
    /// Fingerprint of the key tested.
    pub key_fingerprint: String,
    /// Tokens read (prompts excluded).
    pub tokens: u64,
    /// The test over every scored tuple.
    #[serde(flatten)]
    pub score: Score,
    /// The false-positive rate of the verdict.
    pub fpr: Fpr,
    /// Verdict of the test at `fpr`.
    pub watermarked: bool,
}

impl ReportHeader {
    /// The header of `tally`'s test over `tokens` tokens under `green`.
    pub(crate) fn new(green: &GreenList, tokens: u64, tally: &Tally, fpr: Fpr) -> Self {
        let score = tally.score(green);
        ReportHeader {
            spec: SPEC_VERSION,
            key_fingerprint: green.key_fingerprint().to_string(),
            tokens,
            watermarked: score.is_significant(fpr.get()),
            score,
            fpr,
        }
    }
}

/// Refuses any token outside `green`'s vocabulary, before a pass relies on all being inside.
pub(crate) fn check_tokens(green: &GreenList, parts: &[&[u32]]) -> Result<()> {
    for part in parts {
        for &t in *part {
            green.check_token(t)?;
        }
    }
    Ok(())
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
    /// Positions with nothing to score (`true`), as long as the text when given.
    pub unaligned: Option<&'a [bool]>,
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
            let skip = if rules.unaligned.is_some_and(|u| u[i]) {
                Some(TokenStatus::Unaligned)
            } else if !prompt_seeds.is_empty() && prompt_seeds.contains(&seed) {
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

/// Hasher for (seed, token) tuples. Seeds are already outputs of a 64-bit mixer, so one
/// multiply-rotate spreads them; SipHash would cost more than the PRF here.
type TupleHash = BuildHasherDefault<TupleHasher>;

#[derive(Default)]
struct TupleHasher(u64);

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
mod tests {
    use super::*;
    use crate::{Scheme, SecretKey};

    #[test]
    fn a_tally_counts_each_status_once() {
        use TokenStatus::*;
        let statuses = [
            Green,
            Red,
            Green,
            TooLittleContext,
            Repeated,
            InPrompt,
            EarlierInText,
            NotInFilter,
            Repeated,
            Unaligned,
        ];
        let mut tally = Tally::default();
        tally.add(&statuses);
        assert_eq!((tally.scored, tally.green), (3, 2));
        let want = Skipped {
            too_little_context: 1,
            repeated: 2,
            in_prompt: 1,
            earlier_in_text: 1,
            not_in_filter: 1,
            unaligned: 1,
        };
        assert_eq!(tally.skipped, want);
        assert_eq!(tally.scored + tally.skipped.total(), statuses.len() as u64);
    }

    #[test]
    fn skipped_writes_five_reasons_and_detection_three() {
        let skipped = Skipped {
            too_little_context: 2,
            repeated: 3,
            in_prompt: 4,
            ..Skipped::default()
        };
        let all = serde_json::to_value(skipped).unwrap();
        assert_eq!(all.as_object().unwrap().len(), 5);
        let shown = serde_json::to_string(&skipped.detection_reasons()).unwrap();
        assert_eq!(
            shown,
            r#"{"too_little_context":2,"repeated":3,"in_prompt":4}"#
        );
    }

    #[test]
    fn the_header_flattens_the_score_between_tokens_and_fpr() {
        let green = GreenList::new(&SecretKey::from_bytes([1; 32]), Scheme::default(), 10).unwrap();
        let tally = Tally {
            scored: 40,
            green: 30,
            skipped: Skipped::default(),
        };
        let header = ReportHeader::new(&green, 45, &tally, Fpr::DEFAULT);
        assert!(header.watermarked);
        let text = serde_json::to_string(&header).unwrap();
        let keys: Vec<&str> = text
            .split(',')
            .map(|field| field.trim_start_matches('{').split(':').next().unwrap())
            .collect();
        let want = [
            "spec",
            "key_fingerprint",
            "tokens",
            "scored",
            "green",
            "gamma",
            "green_fraction",
            "z_score",
            "p_value",
            "log10_p_value",
            "fpr",
            "watermarked",
        ];
        assert_eq!(keys, want.map(|k| format!("\"{k}\"")));
    }
}
