//! A document's scored tuples before deduplication: what one shard of a many-machine scan
//! emits, so that the corpus-wide rule (each (seed, token) tuple scored once) can be applied
//! elsewhere, by sending every tuple to the partition its hash picks.
//!
//! The per-document rules (too little context, windows seen in the prompt, windows read
//! earlier) are applied here, exactly as [`detect_in_corpus`](crate::detect_in_corpus) and
//! [`Audit`](crate::Audit) apply them. Whether a tuple is green depends on the tuple alone, so
//! counting each distinct tuple once, in any order and on any machine, gives the counts of one
//! process: scored = distinct tuples, green = green distinct tuples, repeated = tuples emitted
//! minus distinct tuples.

use crate::dedup::TupleSet;
use crate::error::{Error, Result};
use crate::green::GreenList;
use crate::scan::{check_tokens, classify, seed_at, Rules, Skipped, TokenStatus};

/// Which tokens of a document are left out before deduplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardRules {
    /// Leave out a token whose window also seeds a position inside the prompt.
    pub exclude_prompt: bool,
    /// Leave out a token whose window also seeds an earlier position of the text (reading
    /// mode of the audit).
    pub exclude_earlier: bool,
}

impl ShardRules {
    /// The rules of detection and of a closed-model audit ([`Audit::add_output`](crate::Audit::add_output)
    /// with its default options).
    pub const DETECTION: ShardRules = ShardRules {
        exclude_prompt: true,
        exclude_earlier: false,
    };
}

/// What documents contribute to a sharded scan: their tuples, in order of position, each with
/// its green bit, and the tokens left out by the per-document rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScoredTuples {
    /// The (seed, token) tuple of each token not left out, repeats included.
    pub tuples: Vec<(u64, u32)>,
    /// Whether `tuples[i]` is green.
    pub green: Vec<bool>,
    /// Tokens left out, by reason (`repeated` stays 0: that rule is the caller's).
    pub skipped: Skipped,
    /// Documents added.
    pub documents: u64,
    /// Tokens read (prompts excluded).
    pub tokens: u64,
}

impl ScoredTuples {
    /// Appends the tuples of one document: `text` gives the windows (after `prompt`) and
    /// `scored[i]` is the token scored at position i (`text` itself for detection and a
    /// suspect's outputs, its predictions in reading mode).
    pub fn add(
        &mut self,
        green: &GreenList,
        prompt: &[u32],
        text: &[u32],
        scored: &[u32],
        rules: ShardRules,
    ) -> Result<()> {
        if scored.len() != text.len() {
            return Err(Error::InvalidParameter(format!(
                "{} scored tokens for a text of {} tokens: one per position is needed",
                scored.len(),
                text.len()
            )));
        }
        check_tokens(green, &[prompt, text, scored])?;
        let rules = Rules {
            deduplicate: false,
            exclude_prompt: rules.exclude_prompt,
            exclude_earlier: rules.exclude_earlier,
            filter: None,
            unaligned: None,
        };
        // Without deduplication the set is never read or written.
        let statuses = classify(green, prompt, text, scored, rules, &mut TupleSet::default());
        for (i, status) in statuses.into_iter().enumerate() {
            let is_green = match status {
                TokenStatus::Green => true,
                TokenStatus::Red => false,
                TokenStatus::TooLittleContext => {
                    self.skipped.too_little_context += 1;
                    continue;
                }
                TokenStatus::InPrompt => {
                    self.skipped.in_prompt += 1;
                    continue;
                }
                TokenStatus::EarlierInText => {
                    self.skipped.earlier_in_text += 1;
                    continue;
                }
                // Not produced without deduplication, a filter or unaligned positions.
                TokenStatus::Repeated | TokenStatus::NotInFilter | TokenStatus::Unaligned => {
                    continue
                }
            };
            let seed = seed_at(green, prompt, text, prompt.len() + i, scored[i]);
            self.tuples.push((seed, scored[i]));
            self.green.push(is_green);
        }
        self.documents += 1;
        self.tokens += text.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::green;
    use crate::{Audit, AuditOptions, Seeding};
    use std::collections::HashSet;

    fn pseudo_text(seed: u64, n: usize) -> Vec<u32> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000) as u32
            })
            .collect()
    }

    /// (scored, green, repeated) from distinct tuples, in whatever order they come.
    fn distinct_counts(parts: &[ScoredTuples]) -> (u64, u64, u64) {
        let mut seen = HashSet::new();
        let (mut emitted, mut green) = (0u64, 0u64);
        for part in parts {
            for (t, &g) in part.tuples.iter().zip(&part.green) {
                emitted += 1;
                if seen.insert(*t) {
                    green += u64::from(g);
                }
            }
        }
        (seen.len() as u64, green, emitted - seen.len() as u64)
    }

    #[test]
    fn shards_in_any_order_count_what_one_audit_counts() {
        for (seeding, width) in [(Seeding::Previous, 2), (Seeding::SelfSeeded, 3)] {
            let g = green(seeding, width);
            let mut audit = Audit::new(g.clone(), AuditOptions::default()).unwrap();
            // Three shards, filled round robin and read back in reverse.
            let mut shards = vec![ScoredTuples::default(); 3];
            for doc in 0..60u64 {
                let prompt = pseudo_text(doc % 7, 12);
                let mut response = pseudo_text(doc % 6 + 100, 30);
                response.extend(pseudo_text(doc + 1000, 50));
                response.extend_from_slice(&prompt[..5]);
                audit.add_output(&prompt, &response).unwrap();
                shards[(doc % 3) as usize]
                    .add(&g, &prompt, &response, &response, ShardRules::DETECTION)
                    .unwrap();
            }
            shards.reverse();
            let r = audit.report();
            let (scored, green_count, repeated) = distinct_counts(&shards);
            assert_eq!(
                (r.header.score.scored, r.header.score.green),
                (scored, green_count)
            );
            assert_eq!(r.skipped.repeated, repeated);
            assert!(repeated > 0);
            let sum = |f: fn(&ScoredTuples) -> u64| shards.iter().map(f).sum::<u64>();
            assert_eq!(r.skipped.in_prompt, sum(|s| s.skipped.in_prompt));
            assert_eq!(
                r.skipped.too_little_context,
                sum(|s| s.skipped.too_little_context)
            );
            assert_eq!(
                (r.documents, r.header.tokens),
                (sum(|s| s.documents), sum(|s| s.tokens))
            );
        }
    }

    #[test]
    fn reading_mode_leaves_out_windows_read_earlier() {
        let g = green(Seeding::Previous, 2);
        let text = vec![1, 2, 7, 8, 9, 4, 5, 7, 8, 9, 6];
        let predictions = vec![3, 7, 8, 9, 4, 5, 7, 8, 9, 6, 2];
        let mut audit = Audit::new(g.clone(), AuditOptions::default()).unwrap();
        audit.add_reading(&[], &text, &predictions).unwrap();
        let mut shard = ScoredTuples::default();
        let rules = ShardRules {
            exclude_prompt: true,
            exclude_earlier: true,
        };
        shard.add(&g, &[], &text, &predictions, rules).unwrap();
        let r = audit.report();
        assert_eq!(shard.skipped.earlier_in_text, r.skipped.earlier_in_text);
        let (scored, green_count, _) = distinct_counts(&[shard]);
        assert_eq!(
            (scored, green_count),
            (r.header.score.scored, r.header.score.green)
        );
    }

    #[test]
    fn bad_input_is_refused_and_adds_nothing() {
        let g = green(Seeding::Previous, 2);
        let mut shard = ScoredTuples::default();
        let rules = ShardRules::DETECTION;
        assert!(matches!(
            shard.add(&g, &[], &[1, 2, 3], &[1, 2], rules),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            shard.add(&g, &[1], &[2, 1000], &[2, 1000], rules),
            Err(Error::TokenOutOfVocabulary { .. })
        ));
        assert_eq!(shard, ScoredTuples::default());
    }
}
