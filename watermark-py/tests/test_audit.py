"""The distillation audit from Python reports what `tracemark audit --json` reports."""

import numpy as np
import pytest

import tracemark
from conftest import run_cli
from test_detect import _docs

CLI_ONLY = ("mode", "supervised", "seconds")


def _cli_audit(cli, profile, tmp_path, suspect, *extra):
    import json

    if run_cli(cli, "audit", "--help", check=False).returncode != 0:
        pytest.skip("this tracemark CLI has no `audit` command")
    path = tmp_path / "suspect.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in suspect))
    out = run_cli(cli, "audit", "--profile", str(profile), "--suspect", str(path), "--json", *extra).stdout
    report = json.loads(out)
    return {k: v for k, v in report.items() if k not in CLI_ONLY}


def test_closed_model_audit_matches_the_cli(cli, small_profile, tmp_path):
    wm = tracemark.Watermark.from_profile(small_profile)
    docs = _docs(wm)
    suspect = docs + [docs[0]]  # a suspect repeating itself: its tuples count once
    audit = tracemark.Audit(wm)
    audit.add_output(suspect[0]["tokens"], suspect[0]["prompt_tokens"])
    audit.add_outputs([d["tokens"] for d in suspect[1:]], [d.get("prompt_tokens") for d in suspect[1:]])
    report = audit.report()
    assert report == _cli_audit(cli, small_profile, tmp_path, suspect)
    assert report["skipped"]["repeated"] >= len(docs[0]["tokens"]) - 2
    score = audit.score()
    assert (score.scored, score.green) == (report["scored"], report["green"])
    assert audit.curve()[-1]["scored"] == report["scored"]


def test_supervised_audit_scores_only_our_windows(cli, small_profile, tmp_path):
    wm = tracemark.Watermark.from_profile(small_profile)
    docs = _docs(wm)
    ours = tracemark.WindowFilter(wm)
    ours.add_text(docs[0]["tokens"], docs[0]["prompt_tokens"])
    assert len(ours) > 0
    audit = tracemark.Audit(wm, filter=ours)
    audit.add_outputs([d["tokens"] for d in docs[1:]])
    report = audit.report()
    assert report["filter_windows"] == len(ours)
    assert report["skipped"]["not_in_filter"] > 0
    import json

    (tmp_path / "ours.jsonl").write_text(json.dumps({"prompt_tokens": docs[0]["prompt_tokens"], "tokens": docs[0]["tokens"]}) + "\n")
    want = _cli_audit(cli, small_profile, tmp_path, [{"tokens": d["tokens"]} for d in docs[1:]], "--filter", str(tmp_path / "ours.jsonl"))
    assert report == want


def test_reading_mode_and_bad_input(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    rng = np.random.default_rng(2)
    text = rng.integers(0, 1000, size=200)
    audit = tracemark.Audit(wm, fpr=1e-3)
    audit.add_reading(text, text)  # a suspect that predicts our text exactly
    assert audit.report()["documents"] == 1
    with pytest.raises(tracemark.InputError, match="predictions"):
        audit.add_reading(text, text[:-1])
    with pytest.raises(tracemark.InputError, match="false-positive rate"):
        tracemark.Audit(wm, fpr=2.0)


def test_add_outputs_is_all_or_nothing(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    docs = [d["tokens"] for d in _docs(wm)]
    audit = tracemark.Audit(wm)
    audit.add_output(docs[0])
    before = audit.report()
    # A later document (or prompt) refused: nothing of the batch is added.
    with pytest.raises(tracemark.InputError, match="token id 1000 is outside the vocabulary"):
        audit.add_outputs([docs[1], docs[2] + [1000]])
    with pytest.raises(tracemark.InputError, match="outside the vocabulary"):
        audit.add_outputs([docs[1], docs[2]], [None, [5, 1000]])
    with pytest.raises(TypeError):
        audit.add_outputs([docs[1], [1, "2"]])
    with pytest.raises(tracemark.InputError, match="2 responses but 1 prompts"):
        audit.add_outputs([docs[1], docs[2]], [None])
    assert audit.report() == before
    assert audit.curve()[-1]["documents"] == 1
    # And the audit goes on as if the failed batches had never been offered.
    audit.add_outputs([docs[1], docs[2]])
    fresh = tracemark.Audit(wm)
    fresh.add_outputs(docs[:3])
    assert audit.report() == fresh.report()


@pytest.mark.parametrize(
    "flags, off",
    [
        ({"deduplicate": False}, ["deduplicate"]),
        ({"exclude_context": False}, ["exclude_context"]),
        ({"deduplicate": False, "exclude_context": False}, ["deduplicate", "exclude_context"]),
    ],
)
def test_rules_turned_off_are_reported_and_invalidate_the_p_value(small_profile, flags, off):
    import json

    wm = tracemark.Watermark.from_profile(small_profile)
    docs = _docs(wm)
    audit = tracemark.Audit(wm, **flags)
    audit.add_outputs([d["tokens"] for d in docs], [d.get("prompt_tokens") for d in docs])
    report = audit.report()
    assert report["valid"] is False
    assert report["rules_off"] == off
    assert json.loads(json.dumps(report))["rules_off"] == off
    # Everything else is the core's report of such an audit.
    assert report["documents"] == len(docs)
    for rule in ("deduplicate", "exclude_context", "valid", "rules_off"):
        assert rule in tracemark.Audit.__doc__


def test_an_audit_with_every_rule_on_reports_no_validity_fields(small_profile):
    # The default report is exactly the CLI's (compared field by field above): no extra keys.
    wm = tracemark.Watermark.from_profile(small_profile)
    audit = tracemark.Audit(wm, deduplicate=True, exclude_context=True)
    audit.add_output(list(range(100)))
    report = audit.report()
    assert "valid" not in report and "rules_off" not in report


def test_plan_matches_the_cli_and_an_inconclusive_report_carries_one(cli, small_profile, tmp_path):
    wm = tracemark.Watermark.from_profile(small_profile)
    plain = [{"tokens": d["tokens"]} for d in _docs(wm)[1:3]]  # random and repetitive: not flagged
    audit = tracemark.Audit(wm)
    audit.add_outputs([d["tokens"] for d in plain])
    report = audit.report()
    assert report["watermarked"] is False and report["inconclusive"] is True
    assert report["conclusion"] == f"not detected at {report['scored']:,} scored tokens"
    assert report["plan"] == audit.plan()
    want = _cli_audit(cli, small_profile, tmp_path, plain, "--plan", "--plan-target", "1e-3", "--plan-power", "0.9")
    assert audit.plan(target=1e-3, power=0.9) == want["plan"]
    assert want["plan"]["target"] == 1e-3 and want["plan"]["power"] == 0.9
    with pytest.raises(tracemark.InputError, match="confidence"):
        audit.plan(confidence=1.0)
    with pytest.raises(tracemark.InputError, match="false-positive rate"):
        audit.plan(target=0.0)
