//! The findings of `audit --report`: the pooled test, its curve, the skipped counts, the plan,
//! and the files the audit read.

use std::path::Path;

use anyhow::Result;
use watermark_core::account::AccountAuditReport;
use watermark_core::evidence::{
    skipped_by_rule, thin_curve, AccountsFinding, AuditFinding, Findings, Statistics,
};
use watermark_core::{AuditReport, CurvePoint, ProfileSession};

use super::{input_file, input_files, tokenizer_input, Run};
use crate::commands::audit::AuditArgs;

/// The audit's findings and provenance. `suspect` is the outputs file audited (`--suspect`, or
/// a live audit's answer cache, which recomputes the same report offline); `reading` tells the
/// open-model mode.
pub(crate) fn audit_findings(
    args: &AuditArgs,
    session: &ProfileSession,
    report: &AuditReport,
    curve: &[CurvePoint],
    suspect: Option<&Path>,
    reading: bool,
    accounts: Option<&AccountAuditReport>,
) -> Result<Run> {
    let mut inputs = Vec::new();
    let mut rerun = vec![
        "audit".to_string(),
        "--fpr".into(),
        report.header.fpr.get().to_string(),
    ];
    let mut add = |role: &str, flag: &str, path: &Path| -> Result<()> {
        inputs.extend(input_files(role, path)?);
        rerun.extend([flag.to_string(), path.display().to_string()]);
        Ok(())
    };
    match (suspect, &args.suspect_model, &args.texts) {
        (Some(outputs), _, _) => add("suspect outputs", "--suspect", outputs)?,
        (None, Some(model), Some(texts)) => {
            add("suspect model", "--suspect-model", model)?;
            add("our texts", "--texts", texts)?;
        }
        _ => {
            input_file("suspect outputs", Path::new("-"))?;
        }
    }
    if let Some(filter) = &args.filter {
        add("our outputs (filter)", "--filter", filter)?;
    }
    if let Some(list) = &args.accounts {
        add("accounts tested", "--accounts", list)?;
    }
    if let Some(t) = &args.tokenizer {
        rerun.extend(["--tokenizer".into(), t.display().to_string()]);
    }
    inputs.extend(tokenizer_input(session)?);
    if args.plan {
        rerun.push("--plan".into());
        if let Some(target) = args.plan_target {
            rerun.extend(["--plan-target".into(), target.to_string()]);
        }
        rerun.extend(["--plan-power".into(), args.plan_power.to_string()]);
        rerun.extend(["--plan-confidence".into(), args.plan_confidence.to_string()]);
    }
    let s = &report.header.score;
    let verdict = if s.scored == 0 {
        "nothing to score"
    } else if report.header.watermarked {
        "watermarked"
    } else {
        "not detected"
    };
    let points: Vec<[f64; 2]> = curve
        .iter()
        .map(|p| [p.scored as f64, p.log10_p_value])
        .collect();
    let finding = AuditFinding {
        mode: if reading { "reading" } else { "closed" }.to_string(),
        supervised: args.filter.is_some(),
        documents: report.documents,
        verdict: verdict.to_string(),
        statistics: Statistics::of(&report.header),
        skipped: skipped_by_rule(&report.skipped),
        conclusion: report.conclusion.clone(),
        plan: report.plan.as_ref().map(|p| p.summary.clone()),
        curve: thin_curve(&points),
        accounts: accounts.map(|a| AccountsFinding::of(&a.attribution)),
    };
    Ok(Run {
        findings: Findings::Audit(Box::new(finding)),
        inputs,
        rerun,
    })
}
