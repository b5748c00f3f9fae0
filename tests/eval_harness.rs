//! The evaluation harness (`make eval`) run end to end at its tiny size, so that it cannot rot:
//! every section is produced, every plot is a PNG, and the numbers hang together.

#![allow(clippy::unwrap_used)]

mod support;

use tracemark_lab::corpus;
use tracemark_lab::eval::{self, EvalConfig, EvalInputs, Size};
use tracemark_model::generate::Generator;
use tracemark_model::llama::LoadOptions;

#[test]
fn the_tiny_evaluation_writes_a_complete_report() {
    let (Some(model_path), Some(corpus_path)) = (support::model_path(), support::corpus_path())
    else {
        return;
    };
    let generator = Generator::load(&model_path, &LoadOptions::default()).unwrap();
    let inputs = EvalInputs {
        generator: &generator,
        prompts: eval::read_prompts(&eval::default_prompts_path()).unwrap(),
        corpus: corpus::read_documents(&corpus_path).unwrap(),
        model_note: "test".into(),
    };
    let cfg = EvalConfig::for_size(Size::Tiny);
    let out = std::env::temp_dir().join(format!("tracemark-eval-harness-{}", std::process::id()));
    let outcome = eval::run(&cfg, &inputs, &out, |_| {}).unwrap();

    let md = std::fs::read_to_string(&outcome.report).unwrap();
    for section in [
        "## Power",
        "## Theory check",
        "## Quality",
        "## False positives on human text",
        "### Token edits",
        "### Copy-paste",
        "### Paraphrase",
    ] {
        assert!(md.contains(section), "the report lacks {section}");
    }
    // Every linked plot exists and is a PNG.
    let mut plots = 0;
    for link in md.split("](").skip(1) {
        let name = &link[..link.find(')').unwrap()];
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        plots += 1;
    }
    assert!(plots >= 6, "{plots} plots");
    assert!(out.join("results.json").is_file());

    let r = &outcome.results;
    assert_eq!(r.power.len(), cfg.configs().len() * cfg.lengths.len());
    for p in &r.power {
        assert!((0.0..=1.0).contains(&p.tpr_1e3) && p.tpr_1e5 <= p.tpr_1e3);
    }
    // δ = 2 on ~48 tokens: the green share is far above γ = 0.25 (expected ≈ 0.5; at or below
    // 0.25 has probability below 1e-6), and at or above the bound's order.
    for t in &r.theory {
        assert!(t.measured > t.config.gamma, "{t:?}");
        assert!(t.bound > t.config.gamma && t.bound < 1.0, "{t:?}");
    }
    for q in &r.quality {
        assert!(q.mean_ppl > 1.0 && q.mean_ppl.is_finite(), "{q:?}");
    }
    let all: Vec<_> = r.fpr.iter().filter(|f| f.genre == "all").collect();
    assert_eq!(all.len(), cfg.fpr_alphas.len());
    assert!(all
        .iter()
        .all(|f| f.tests >= 4 * cfg.fpr_docs_per_genre / 2));
    for p in &r.paste {
        assert!((0.0..=1.0).contains(&p.auc_plain_z) && (0.0..=1.0).contains(&p.auc_windowed));
    }
    assert!(r.paraphrase.is_some());
    std::fs::remove_dir_all(&out).unwrap();
}
