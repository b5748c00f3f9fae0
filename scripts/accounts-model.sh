#!/bin/bash
# Real-model identification: 30 answers of the default model, 3 per account acct-0..acct-9,
# each tested against 10, 100 and 10^4 accounts at FPR 1e-6.
set -euo pipefail
# Run from the repository root after `make build` (and `make model`); work in target/accounts-model.
BIN="$PWD/target/release/tracemark"
mkdir -p target/accounts-model
cd target/accounts-model
python3 - <<'PY'
import json
topics = ["a lighthouse keeper", "a busy market", "the first snow of winter", "a lost cat",
          "an old library", "a train journey", "a summer storm", "a mountain village",
          "a robot learning to paint", "a bakery at dawn", "a river in spring",
          "a chess tournament", "a night at the museum", "a garden in autumn",
          "a desert expedition", "a small fishing boat", "a city at midnight",
          "a school science fair", "a forgotten letter", "a music festival",
          "an island lighthouse", "a bicycle repair shop", "a rainy afternoon",
          "a hot air balloon", "a kitchen experiment", "a winter cabin", "a street musician",
          "a new neighbour", "a broken clock", "a field of sunflowers"]
with open("prompts.jsonl", "w") as f:
    for i, t in enumerate(topics):
        f.write(json.dumps({"prompt": f"Write a short story about {t}.", "id": i}) + "\n")
PY
rm -rf k answers.jsonl
$BIN keygen --out k > /dev/null
: > answers.jsonl
for a in $(seq 0 9); do
  sed -n "$((3*a+1)),$((3*a+3))p" prompts.jsonl > p$a.jsonl
  $BIN generate --profile k/profile.toml --prompts p$a.jsonl --json --max-tokens 150 --seed $a --account acct-$a --threads 2 2>/dev/null >> answers.jsonl
done
echo "| accounts | documents | tokens | scored | identified | wrong | master detected |"
echo "|---|---|---|---|---|---|---|"
for m in 10 100 10000; do
  seq 0 $((m-1)) | sed 's/^/acct-/' > accounts$m.txt
  $BIN detect --profile k/profile.toml --accounts accounts$m.txt answers.jsonl --json --fpr 1e-6 > detect$m.jsonl || true
  python3 - "$m" <<'PY'
import json, sys
m = sys.argv[1]
rows = [json.loads(l) for l in open(f"detect{m}.jsonl")]
ok = sum(1 for r in rows if r["accounts"]["best"] == f"acct-{r['id']//3}")
wrong = sum(1 for r in rows if r["accounts"]["best"] not in (None, f"acct-{r['id']//3}"))
master = sum(1 for r in rows if r["watermarked"])
tokens = sum(r["tokens"] for r in rows) / len(rows)
scored = sum(r["scored"] for r in rows) / len(rows)
print(f"| {m} | {len(rows)} | {tokens:.0f} | {scored:.0f} | {ok/len(rows):.3f} | {wrong/len(rows):.3f} | {master/len(rows):.3f} |")
PY
done
