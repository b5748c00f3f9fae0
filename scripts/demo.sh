#!/usr/bin/env bash
# make demo: the main job from a fresh clone. Fetches the default model if missing, builds the
# verifier, creates a key and profile, has SmolLM2-135M-Instruct answer a handful of varied
# prompts with and without the watermark, and detects every answer.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. the default model (SmolLM2-135M-Instruct, Apache-2.0)"
bash scripts/fetch-model.sh

say "2. building the tracemark verifier (release)"
cargo build --release --quiet -p verifier-cli
bin="${CARGO_TARGET_DIR:-target}/release/tracemark"

work="${TRACEMARK_DEMO_DIR:-$(mktemp -d -t tracemark-demo.XXXXXX)}"
mkdir -p "$work"
say "3. a new secret key and profile in $work/keys"
rm -rf "$work/keys"
"$bin" keygen --out "$work/keys"

cat > "$work/prompts.jsonl" <<'JSONL'
{"id": "story", "prompt": "Write a short story about a lighthouse keeper who finds a message in a bottle."}
{"id": "science", "prompt": "Explain why the sky is blue to a curious ten-year-old."}
{"id": "recipe", "prompt": "Give me a simple recipe for a vegetable soup, with steps."}
{"id": "email", "prompt": "Write a polite email asking my landlord to fix a leaking kitchen tap."}
{"id": "history", "prompt": "Summarize the causes of the French Revolution in a few paragraphs."}
{"id": "advice", "prompt": "What are some good habits for learning a new programming language?"}
JSONL

tokens="${TRACEMARK_DEMO_TOKENS:-200}"
say "4. answering 6 prompts, $tokens tokens each, with the watermark (temperature 1)"
"$bin" generate --profile "$work/keys/profile.toml" --prompts "$work/prompts.jsonl" \
  --max-tokens "$tokens" --seed 1 --json > "$work/watermarked.jsonl"
say "5. the same prompts without the watermark"
"$bin" generate --profile "$work/keys/profile.toml" --prompts "$work/prompts.jsonl" \
  --max-tokens "$tokens" --seed 1 --json --no-watermark > "$work/plain.jsonl"

say "an example watermarked answer (story)"
python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["completion"])' \
  "$work/watermarked.jsonl" | fold -s -w 100

say "6. detection: every answer, knowing only the key (each line is file:line)"
"$bin" detect --profile "$work/keys/profile.toml" "$work/watermarked.jsonl" "$work/plain.jsonl"

say "done: watermarked answers are in $work/watermarked.jsonl, plain ones in $work/plain.jsonl"
