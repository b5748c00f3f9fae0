#!/usr/bin/env bash
# `make accounts-students`: attribution through n-gram students of the REAL model (default
# SmolLM2 GGUF). A key in target/accounts-students/k (made once), the teacher's answers for
# acct-3 and acct-41 (cached there per account: a rerun generates nothing), the students and
# their per-account audits (tracemark-lab's accounts_students), then `tracemark audit
# --accounts` on the same student answers, so that the CLI's verdicts can be read beside the
# table. Extra arguments go to accounts_students (e.g. --train 320).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="$target/accounts-students"
bash scripts/fetch-model.sh >/dev/null
export TRACEMARK_CORPUS="${TRACEMARK_CORPUS:-$(bash scripts/fetch-corpus.sh)}"
cargo build --release -q -p verifier-cli -p tracemark-lab --bin tracemark --bin accounts_students
bin="$target/release/tracemark"
mkdir -p "$out"
if [ ! -f "$out/k/profile.toml" ]; then
  "$bin" keygen --out "$out/k" >/dev/null
fi
"$target/release/accounts_students" --profile "$out/k/profile.toml" --out "$out" "$@"
echo
echo "The same student answers through the CLI (tracemark audit --accounts --json):"
for pair in "student-answers.jsonl accounts.txt" "student-answers.jsonl accounts-unlisted.txt" "student-human.jsonl accounts.txt"; do
  set -- $pair
  "$bin" audit --profile "$out/k/profile.toml" --suspect "$out/$1" --accounts "$out/$2" --json > "$out/audit-$1-$2.json" || true
  python3 - "$out/audit-$1-$2.json" "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["accounts"]
named = [x["account"] for x in a["accounts"] if x["attributed"]]
print(f"{sys.argv[2]} against {sys.argv[3]}: master log10 p {r['log10_p_value']:.1f}, "
      f"accounts named: {', '.join(named) or 'none'} (best corrected log10 p {a['accounts'][0]['corrected_log10_p_value']:.1f})")
PY
done
