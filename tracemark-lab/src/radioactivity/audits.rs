//! The audits of a student: closed model (its outputs) and reading mode (its predictions over
//! our texts), each optionally supervised by a filter of our watermarked windows.

use watermark_core::GreenList;
use watermark_core::{Audit, AuditOptions, AuditReport, WindowFilter};

use super::{Result, Sample};

/// A filter of the windows of `ours` (our watermarked outputs), for a supervised audit.
pub fn window_filter(green: &GreenList, ours: &[&Sample]) -> Result<WindowFilter> {
    let mut filter = WindowFilter::new(green);
    for s in ours {
        filter.add_text(&s.prompt_ids, &s.response_ids)?;
    }
    Ok(filter)
}

/// An empty audit under `green`, supervised when `filter` is given.
pub(super) fn new_audit(
    green: &GreenList,
    filter: Option<WindowFilter>,
    options: &AuditOptions,
) -> Result<Audit> {
    let audit = Audit::new(green.clone(), options.clone())?;
    Ok(match filter {
        Some(f) => audit.with_filter(f)?,
        None => audit,
    })
}

/// Closed-model audit of a suspect's outputs; supervised when `filter` is given.
pub fn audit_outputs(
    green: &GreenList,
    outputs: &[Sample],
    filter: Option<WindowFilter>,
    options: &AuditOptions,
) -> Result<AuditReport> {
    let mut audit = new_audit(green, filter, options)?;
    for s in outputs {
        audit.add_output(&s.prompt_ids, &s.response_ids)?;
    }
    Ok(audit.report())
}

/// The unsupervised closed audit of `outputs` (a suspect that never saw these keys' texts)
/// under each of `keys`: one log10 p per key, and the tuples scored, which do not depend on
/// the key.
pub fn closed_under_keys<'a>(
    keys: impl IntoIterator<Item = &'a GreenList>,
    outputs: &[Sample],
) -> Result<(u64, Vec<f64>)> {
    let options = AuditOptions::default();
    let mut scored = 0;
    let mut log10_p = Vec::new();
    for g in keys {
        let score = audit_outputs(g, outputs, None, &options)?.header.score;
        scored = score.scored;
        log10_p.push(score.log10_p_value);
    }
    Ok((scored, log10_p))
}

/// Reading-mode audit: `predictions[j][i]` is the suspect's top-1 for position `i` of
/// `texts[j]`'s response, read after its prompt.
pub fn audit_reading(
    green: &GreenList,
    texts: &[&Sample],
    predictions: &[Vec<u32>],
    filter: Option<WindowFilter>,
    options: &AuditOptions,
) -> Result<AuditReport> {
    let mut audit = new_audit(green, filter, options)?;
    for (s, p) in texts.iter().zip(predictions) {
        audit.add_reading(&s.prompt_ids, &s.response_ids, p)?;
    }
    Ok(audit.report())
}
