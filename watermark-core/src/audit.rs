//! The distillation audit: one pooled test over everything a suspect model wrote (closed model)
//! or predicted while reading our texts (open model), for the bias a model inherits when it is
//! trained on watermarked outputs ("radioactivity", Sander et al. 2024).
//!
//! The pooled test is the detector's exact binomial test over every scored token of the audit.
//! It is valid only if, under the null hypothesis (a suspect never trained on our outputs),
//! each scored token is a fresh coin flip, so the audit enforces, across all documents:
//! - each (seed, token) tuple is scored once: suspects repeat themselves across outputs, and a
//!   repeated tuple counts one coin flip many times;
//! - a token is not scored when its window also seeds a position the suspect has read (its
//!   prompt; in reading mode also the earlier part of our text): an innocent model copying
//!   from watermarked context reproduces its green tokens.
//!
//! A supervised audit (the provider kept the outputs the suspect may have trained on) scores
//! only tokens whose window occurs in those outputs: that is where the inherited bias is.

use serde::Serialize;

use crate::dedup::TupleSet;
use crate::error::{Error, Result};
use crate::fpr::Fpr;
use crate::green::GreenList;
use crate::plan::{grouped, Pilot, Plan, PlanOptions, Planner};
use crate::scan::{check_tokens, classify, seed_at, ReportHeader, Rules, Skipped, Tally};
use crate::score::Score;

/// The rules of an audit. Only tests and demonstrations turn a rule off: without either, the
/// p-value is no longer valid.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditOptions {
    /// False-positive rate at which `watermarked` is decided.
    pub fpr: Fpr,
    /// Score each (seed, token) tuple once across the whole audit.
    pub deduplicate: bool,
    /// Leave out tokens whose window occurs in what the suspect read before them.
    pub exclude_context: bool,
    /// Most distinct scored tuples the audit may hold: its memory bound (16 to 32 bytes a
    /// tuple). A document that could cross it is refused, whole, before it is scored, so the
    /// audit so far stays exact.
    pub max_tuples: u64,
}

impl AuditOptions {
    /// The default bound on distinct scored tuples: 2^28, at most 8 GiB of table, far beyond
    /// the ~10^6 scored tokens of an audit at the anchors' scale.
    pub const DEFAULT_MAX_TUPLES: u64 = 1 << 28;
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            fpr: Fpr::DEFAULT,
            deduplicate: true,
            exclude_context: true,
            max_tuples: Self::DEFAULT_MAX_TUPLES,
        }
    }
}

/// The windows of our own outputs, for a supervised audit.
#[derive(Clone, Debug)]
pub struct WindowFilter {
    green: GreenList,
    /// Seeds of the windows, stored as (seed, 0).
    seeds: TupleSet,
}

impl WindowFilter {
    /// An empty filter for audits under `green`'s key and scheme.
    pub fn new(green: &GreenList) -> Self {
        WindowFilter {
            green: green.clone(),
            seeds: TupleSet::default(),
        }
    }

    /// Adds the windows of one of our outputs: each position of `tokens` (the response; the
    /// `prompt` only gives the first windows their left context, it was not watermarked).
    pub fn add_text(&mut self, prompt: &[u32], tokens: &[u32]) -> Result<()> {
        check_tokens(&self.green, &[prompt, tokens])?;
        let need = self.green.scheme().context_width();
        for (i, &token) in tokens.iter().enumerate() {
            let p = prompt.len() + i;
            if p >= need {
                self.seeds
                    .insert(seed_at(&self.green, prompt, tokens, p, token), 0);
            }
        }
        Ok(())
    }

    /// Distinct windows held.
    pub fn len(&self) -> usize {
        self.seeds.len()
    }

    /// Whether no window was added.
    pub fn is_empty(&self) -> bool {
        self.seeds.is_empty()
    }
}

/// One point of the audit's curve: the pooled test after some documents.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Documents added so far.
    pub documents: u64,
    /// Tuples scored so far.
    pub scored: u64,
    /// Green among them.
    pub green: u64,
    /// log10 of the pooled p-value at this point.
    pub log10_p_value: f64,
}

/// Everything `tracemark audit --json` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditReport {
    /// Key, tokens examined (prompts excluded), the pooled test over all scored tuples and its
    /// verdict.
    #[serde(flatten)]
    pub header: ReportHeader,
    /// Documents audited.
    pub documents: u64,
    /// Tokens left out, by reason.
    pub skipped: Skipped,
    /// Distinct windows in the filter of a supervised audit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_windows: Option<u64>,
    /// What the audit shows, with its size: "watermarked at 1,234 scored tokens", "not detected
    /// at 5,708 scored tokens" (never "clean": a binomial test cannot prove absence), or
    /// "nothing scored".
    pub conclusion: String,
    /// True unless the suspect was judged watermarked: no detection is absence of evidence.
    pub inconclusive: bool,
    /// For an inconclusive audit that scored tokens, the power plan at the verdict's
    /// false-positive rate (defaults otherwise): how many scored tokens would reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// A running audit: add documents one at a time (streaming), read the report at any point.
/// Memory grows with the distinct tuples scored (16 bytes each), not with the input.
#[derive(Clone, Debug)]
pub struct Audit {
    green: GreenList,
    options: AuditOptions,
    filter: Option<WindowFilter>,
    seen: TupleSet,
    documents: u64,
    tokens: u64,
    tally: Tally,
    /// (documents, scored, green) at each curve point; p-values are computed when asked for,
    /// so that the curve costs nothing while scoring.
    curve: Vec<(u64, u64, u64)>,
}

impl Audit {
    /// An empty audit under `green`'s key and scheme.
    pub fn new(green: GreenList, options: AuditOptions) -> Result<Self> {
        Ok(Audit {
            green,
            options,
            filter: None,
            seen: TupleSet::default(),
            documents: 0,
            tokens: 0,
            tally: Tally::default(),
            curve: Vec::new(),
        })
    }

    /// Makes the audit supervised: only tokens whose window occurs in `filter` are scored.
    /// The filter must have been built under the same key and scheme.
    pub fn with_filter(mut self, filter: WindowFilter) -> Result<Self> {
        if filter.green.key_fingerprint() != self.green.key_fingerprint() {
            return Err(Error::KeyMismatch {
                found: filter.green.key_fingerprint().to_string(),
                expected: self.green.key_fingerprint().to_string(),
            });
        }
        if filter.green.scheme() != self.green.scheme() {
            return Err(Error::InvalidParameter(
                "the filter was built under another watermark scheme".into(),
            ));
        }
        self.filter = Some(filter);
        Ok(self)
    }

    /// Closed model: one output of the suspect, `response` written after `prompt`.
    pub fn add_output(&mut self, prompt: &[u32], response: &[u32]) -> Result<()> {
        check_tokens(&self.green, &[prompt, response])?;
        self.add(prompt, response, response, false, None)
    }

    /// Open model, reading mode: the suspect read `prompt` ++ `text` (our watermarked text) and
    /// `predictions[i]` is its top-1 prediction for the position of `text[i]`. Each prediction
    /// is scored under the window taken from our text.
    pub fn add_reading(&mut self, prompt: &[u32], text: &[u32], predictions: &[u32]) -> Result<()> {
        check_predictions(predictions.len(), text.len())?;
        check_tokens(&self.green, &[prompt, text, predictions])?;
        self.add(prompt, text, predictions, true, None)
    }

    /// Reading mode for a suspect with another tokenizer: `predictions[i]` is its prediction
    /// for the position of `text[i]` mapped to one of our tokens, or `None` where it maps to
    /// none (counted as `unaligned`). Which positions have a prediction must depend only on
    /// what the suspect read before them, or the test is no longer exact.
    pub fn add_reading_aligned(
        &mut self,
        prompt: &[u32],
        text: &[u32],
        predictions: &[Option<u32>],
    ) -> Result<()> {
        check_predictions(predictions.len(), text.len())?;
        let unaligned: Vec<bool> = predictions.iter().map(Option::is_none).collect();
        let scored: Vec<u32> = predictions
            .iter()
            .zip(text)
            .map(|(p, &t)| p.unwrap_or(t))
            .collect();
        check_tokens(&self.green, &[prompt, text, &scored])?;
        self.add(prompt, text, &scored, true, Some(&unaligned))
    }

    /// Scores one text; `unaligned` marks the positions without a prediction.
    fn add(
        &mut self,
        prompt: &[u32],
        text: &[u32],
        scored: &[u32],
        reading: bool,
        unaligned: Option<&[bool]>,
    ) -> Result<()> {
        check_tuple_budget(&self.options, self.seen.len(), text.len())?;
        let rules = Rules {
            deduplicate: self.options.deduplicate,
            exclude_prompt: self.options.exclude_context,
            exclude_earlier: self.options.exclude_context && reading,
            filter: self.filter.as_ref().map(|f| &f.seeds),
            unaligned,
        };
        let statuses = classify(&self.green, prompt, text, scored, rules, &mut self.seen);
        self.tally.add(&statuses);
        self.documents += 1;
        self.tokens += text.len() as u64;
        self.record_curve_point();
        Ok(())
    }

    /// Keeps a point whenever the scored count has grown by 1% (at least 16 tuples) since the
    /// last one: a few thousand points cover any audit, evenly on a log axis.
    fn record_curve_point(&mut self) {
        let Tally { scored, green, .. } = self.tally;
        let due = match self.curve.last() {
            None => scored > 0,
            Some(&(_, last, _)) => scored >= last + (last / 100).max(16),
        };
        if due {
            self.curve.push((self.documents, scored, green));
        }
    }

    /// The pooled statistics so far.
    pub fn score(&self) -> Score {
        self.tally.score(&self.green)
    }

    /// The report so far; an inconclusive one carries the plan at the verdict's rate.
    pub fn report(&self) -> AuditReport {
        let header = ReportHeader::new(&self.green, self.tokens, &self.tally, self.options.fpr);
        let scored = header.score.scored;
        let conclusion = if scored == 0 {
            "nothing scored".to_string()
        } else if header.watermarked {
            format!("watermarked at {} scored tokens", grouped(scored))
        } else {
            format!("not detected at {} scored tokens", grouped(scored))
        };
        let inconclusive = !header.watermarked;
        let plan = (inconclusive && scored > 0).then(|| {
            let options = PlanOptions {
                target: self.options.fpr,
                ..PlanOptions::default()
            };
            self.plan(options)
        });
        AuditReport {
            header,
            documents: self.documents,
            skipped: self.tally.skipped,
            filter_windows: self.filter.as_ref().map(|f| f.len() as u64),
            conclusion,
            inconclusive,
            plan: plan.and_then(Result::ok),
        }
    }

    /// The power plan from this audit as a pilot: how many scored tokens (and documents) an
    /// audit needs to reach `options.target` (see [`Planner`]).
    pub fn plan(&self, options: PlanOptions) -> Result<Plan> {
        let pilot = Pilot::new(&self.score(), self.documents);
        Ok(Planner::new(pilot, options)?.plan())
    }

    /// Cumulative log10 p against scored tuples, ending at the current state.
    pub fn curve(&self) -> Vec<CurvePoint> {
        let Tally { scored, green, .. } = self.tally;
        let mut counts = self.curve.clone();
        if scored > 0 && counts.last().map(|c| c.1) != Some(scored) {
            counts.push((self.documents, scored, green));
        }
        let gamma = self.green.scheme().effective_gamma();
        counts
            .into_iter()
            .map(|(documents, scored, green)| CurvePoint {
                documents,
                scored,
                green,
                log10_p_value: Score::new(scored, green, gamma).log10_p_value,
            })
            .collect()
    }

    /// Bytes held by the deduplication table (16 per distinct scored tuple when grown).
    pub fn memory_bytes(&self) -> usize {
        self.seen.memory_bytes() + self.filter.as_ref().map_or(0, |f| f.seeds.memory_bytes())
    }
}

/// Refuses a document that could take an audit past its tuple bound: a document adds at most
/// one tuple per token, and only deduplication keeps tuples.
pub(crate) fn check_tuple_budget(options: &AuditOptions, held: usize, tokens: usize) -> Result<()> {
    let limit = options.max_tuples;
    if options.deduplicate && held as u64 + tokens as u64 > limit {
        return Err(Error::AuditTooLarge {
            limit,
            bytes: limit.saturating_mul(32),
        });
    }
    Ok(())
}

/// Reading mode takes one prediction per position of the text.
fn check_predictions(predictions: usize, text: usize) -> Result<()> {
    if predictions == text {
        return Ok(());
    }
    Err(Error::InvalidParameter(format!(
        "{predictions} predictions for a text of {text} tokens: reading mode needs one per position"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::{green, pseudo_text};
    use crate::detect::{detect_in_corpus, DetectOptions};
    use crate::{Scheme, SecretKey, Seeding};

    #[test]
    fn closed_audit_pools_exactly_what_corpus_detection_scores() {
        for (seeding, width) in [(Seeding::Previous, 2), (Seeding::SelfSeeded, 3)] {
            let g = green(seeding, width);
            let mut audit = Audit::new(g.clone(), AuditOptions::default()).unwrap();
            let mut seen = TupleSet::default();
            let (mut scored, mut green_count, mut in_prompt, mut repeated) = (0, 0, 0, 0);
            for doc in 0..40u64 {
                let prompt = pseudo_text(doc % 7, 12);
                // Outputs share material: the same six openings recur.
                let mut response = pseudo_text(doc % 6 + 100, 30);
                response.extend(pseudo_text(doc + 1000, 50));
                response.extend_from_slice(&prompt[..5]);
                audit.add_output(&prompt, &response).unwrap();
                let d =
                    detect_in_corpus(&g, &prompt, &response, &DetectOptions::default(), &mut seen)
                        .unwrap();
                scored += d.header.score.scored;
                green_count += d.header.score.green;
                in_prompt += d.ignored.in_prompt;
                repeated += d.ignored.repeated;
            }
            let r = audit.report();
            assert_eq!(r.documents, 40);
            assert_eq!(
                (r.header.score.scored, r.header.score.green),
                (scored, green_count)
            );
            assert_eq!(r.skipped.in_prompt, in_prompt);
            assert_eq!(r.skipped.repeated, repeated);
            assert!(repeated > 0 && in_prompt > 0, "{r:?}");
            assert_eq!(r.skipped.earlier_in_text + r.skipped.not_in_filter, 0);
        }
    }

    #[test]
    fn a_document_that_could_cross_the_tuple_bound_is_refused_whole() {
        let g = green(Seeding::Previous, 1);
        let bounded = AuditOptions {
            max_tuples: 10,
            ..AuditOptions::default()
        };
        let mut audit = Audit::new(g, bounded).unwrap();
        audit.add_output(&[], &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let before = audit.report();
        // 7 tuples held (the first token has no window); 4 more could cross 10.
        let refused = audit.add_output(&[], &[11, 12, 13, 14]).unwrap_err();
        assert!(
            matches!(refused, Error::AuditTooLarge { limit: 10, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("TRACEMARK_MAX_AUDIT_TUPLES"));
        assert_eq!(
            audit.report(),
            before,
            "nothing of the refused document counts"
        );
        audit.add_output(&[], &[11, 12]).unwrap();
    }

    #[test]
    fn reading_mode_skips_windows_already_read() {
        let g = green(Seeding::Previous, 2);
        // Our text repeats the window (7, 8); at its second occurrence a suspect that copies
        // what followed the first one is not scored.
        let text = vec![1, 2, 7, 8, 9, 4, 5, 7, 8, 9, 6];
        let predictions = vec![3, 7, 8, 9, 4, 5, 7, 8, 9, 6, 2];
        let mut audit = Audit::new(g.clone(), AuditOptions::default()).unwrap();
        audit.add_reading(&[], &text, &predictions).unwrap();
        let r = audit.report();
        assert_eq!(r.skipped.too_little_context, 2);
        // Positions 9 and 10 read windows (7, 8) and (8, 9), first read before positions 4, 5.
        assert_eq!(r.skipped.earlier_in_text, 2);
        assert_eq!(r.header.score.scored, 7);
        // The scored token is the prediction, under the window of our text.
        let mut expected_green = 0;
        for i in 2..text.len() {
            if i >= 9 {
                continue;
            }
            let green = g.is_green(&text[..i], predictions[i]).unwrap().unwrap();
            expected_green += u64::from(green);
        }
        assert_eq!(r.header.score.green, expected_green);

        let off = AuditOptions {
            exclude_context: false,
            ..AuditOptions::default()
        };
        let mut audit = Audit::new(g, off).unwrap();
        audit.add_reading(&[], &text, &predictions).unwrap();
        assert_eq!(audit.report().header.score.scored, 9);
    }

    #[test]
    fn aligned_reading_skips_positions_without_a_prediction() {
        let g = green(Seeding::Previous, 2);
        let text = vec![1, 2, 7, 8, 9, 4, 5, 7, 8, 9, 6];
        let predictions = vec![3, 7, 8, 9, 4, 5, 7, 8, 9, 6, 2];
        let mut plain = Audit::new(g.clone(), AuditOptions::default()).unwrap();
        plain.add_reading(&[], &text, &predictions).unwrap();
        let all: Vec<Option<u32>> = predictions.iter().copied().map(Some).collect();
        let mut aligned = Audit::new(g.clone(), AuditOptions::default()).unwrap();
        aligned.add_reading_aligned(&[], &text, &all).unwrap();
        assert_eq!(aligned.report(), plain.report(), "every position aligned");

        // Positions 3 and 9 have no prediction. Position 3's window (7, 8) still counts as read,
        // so the repeat of that window at position 9 is unaligned, and (8, 9) at 10 is earlier.
        let mut gaps = all.clone();
        gaps[3] = None;
        gaps[9] = None;
        let mut audit = Audit::new(g, AuditOptions::default()).unwrap();
        audit.add_reading_aligned(&[], &text, &gaps).unwrap();
        let r = audit.report();
        assert_eq!(r.skipped.unaligned, 2);
        assert_eq!(r.skipped.earlier_in_text, 1);
        assert_eq!(r.header.score.scored, 6);
        assert_eq!(r.skipped.total() + r.header.score.scored, text.len() as u64);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["skipped"]["unaligned"], 2);
        assert!(serde_json::to_value(plain.report()).unwrap()["skipped"]
            .get("unaligned")
            .is_none());
        let short = audit
            .add_reading_aligned(&[], &text, &gaps[1..])
            .unwrap_err();
        assert!(short.to_string().contains("one per position"), "{short}");
    }

    #[test]
    fn supervised_audit_scores_only_windows_of_our_outputs() {
        let g = green(Seeding::Previous, 1);
        let ours = pseudo_text(1, 200);
        let mut filter = WindowFilter::new(&g);
        filter.add_text(&[], &ours).unwrap();
        let distinct_windows: std::collections::HashSet<u32> =
            ours[..ours.len() - 1].iter().copied().collect();
        assert_eq!(filter.len(), distinct_windows.len());
        let mut audit = Audit::new(g.clone(), AuditOptions::default())
            .unwrap()
            .with_filter(filter)
            .unwrap();
        let suspect = pseudo_text(2, 400);
        audit.add_output(&[], &suspect).unwrap();
        let r = audit.report();
        let inside = suspect[..suspect.len() - 1]
            .iter()
            .filter(|t| distinct_windows.contains(t))
            .count() as u64;
        assert_eq!(r.skipped.not_in_filter, 399 - inside);
        assert_eq!(r.filter_windows, Some(distinct_windows.len() as u64));

        let other =
            GreenList::new(&SecretKey::from_bytes([6; 32]), Scheme::default(), 1000).unwrap();
        let err = Audit::new(other, AuditOptions::default())
            .unwrap()
            .with_filter(WindowFilter::new(&g))
            .unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }));
    }

    #[test]
    fn curve_grows_and_ends_at_the_report() {
        let g = green(Seeding::Previous, 2);
        let mut audit = Audit::new(g, AuditOptions::default()).unwrap();
        for doc in 0..300 {
            audit.add_output(&[], &pseudo_text(doc, 100)).unwrap();
        }
        let curve = audit.curve();
        assert!(curve.len() > 20 && curve.len() < 300, "{}", curve.len());
        assert!(curve.windows(2).all(|w| w[0].scored < w[1].scored));
        let last = curve.last().unwrap();
        let r = audit.report();
        assert_eq!((last.scored, last.documents), (r.header.score.scored, 300));
        assert_eq!(last.log10_p_value, r.header.score.log10_p_value);
    }

    #[test]
    fn reports_say_what_the_audit_concluded_and_plan_when_inconclusive() {
        let g = green(Seeding::Previous, 2);
        let mut audit = Audit::new(g.clone(), AuditOptions::default()).unwrap();
        let empty = audit.report();
        assert_eq!(empty.conclusion, "nothing scored");
        assert!(empty.inconclusive && empty.plan.is_none());
        for doc in 0..20 {
            audit.add_output(&[], &pseudo_text(doc, 100)).unwrap();
        }
        let r = audit.report();
        let scored = r.header.score.scored;
        assert!(!r.header.watermarked && scored > 1000);
        assert_eq!(
            r.conclusion,
            format!("not detected at {} scored tokens", grouped(scored))
        );
        let plan = r.plan.expect("an inconclusive audit carries its plan");
        assert_eq!(plan.target, Fpr::DEFAULT);
        assert_eq!(plan.scored_tokens_per_document, Some(scored as f64 / 20.0));
        assert_eq!(Some(plan), audit.plan(PlanOptions::default()).ok());

        // A suspect that always writes a green token: flagged, conclusive, no plan unless asked.
        let mut text = vec![1_u32, 2];
        while text.len() < 200 {
            // Searched from a moving offset, so that the text does not cycle.
            let from = text.len() as u32 * 389;
            let next = (0..1000)
                .map(|i| (from + i) % 1000)
                .find(|&t| g.is_green(&text, t).unwrap() == Some(true))
                .unwrap();
            text.push(next);
        }
        let mut audit = Audit::new(g, AuditOptions::default()).unwrap();
        audit.add_output(&[], &text).unwrap();
        let r = audit.report();
        assert!(r.header.watermarked && !r.inconclusive && r.plan.is_none());
        assert!(
            r.conclusion.starts_with("watermarked at "),
            "{}",
            r.conclusion
        );
        let plan = audit.plan(PlanOptions::default()).unwrap();
        assert_eq!(plan.status, crate::PlanStatus::Reached);
    }

    #[test]
    fn bad_input_is_refused() {
        let g = green(Seeding::Previous, 2);
        let mut audit = Audit::new(g.clone(), AuditOptions::default()).unwrap();
        assert!(matches!(
            audit.add_reading(&[], &[1, 2, 3], &[1, 2]),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            audit.add_output(&[1], &[2, 1000]),
            Err(Error::TokenOutOfVocabulary { .. })
        ));
        assert_eq!(audit.report().documents, 0);
    }
}
