#!/usr/bin/env bash
# Prints the path of the human-text corpus (human-dev.jsonl.gz: gzip, one JSON object a line,
# {"source", "genre", "doc_id", "text"}) that the false-positive calibration tests read, and
# exits 0. The first of these that exists wins:
#   1. ../shared/corpora/human-dev.jsonl.gz next to the repository (CI and the project's own
#      machines have it);
#   2. ${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}/corpora/human-dev.jsonl.gz;
#   3. otherwise it is built into that cache path: `apt-get download` of the Debian packages
#      fortunes, bible-kjv-text, dict-devil and r-cran-janeaustenr (about 5 MB, no root
#      needed), `dpkg-deb -x`, then scripts/build_corpus.py (Python 3, standard library only).
#      If the download fails and this runs as root, it runs `apt-get update` once and retries.
#      Needs apt-get and dpkg-deb (Debian, Ubuntu); elsewhere it exits 1.
# Environment:
#   TRACEMARK_SHARED_CORPUS  path used instead of step 1's (e.g. /nonexistent, to test the
#                            cache and the build)
#   TRACEMARK_CACHE          cache folder (see step 2)
# Only the path goes to stdout; everything else goes to stderr.
set -euo pipefail

PACKAGES=(fortunes bible-kjv-text dict-devil r-cran-janeaustenr)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

abspath() { # absolute path of an existing file, without resolving the file itself
  echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

shared="${TRACEMARK_SHARED_CORPUS:-$root/../shared/corpora/human-dev.jsonl.gz}"
if [ -f "$shared" ]; then
  abspath "$shared"
  exit 0
fi

cache="${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}"
dest="$cache/corpora/human-dev.jsonl.gz"
if [ -s "$dest" ]; then
  abspath "$dest"
  exit 0
fi

missing=()
for tool in apt-get dpkg-deb python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: no corpus at $dest, and building it needs ${missing[*]} (Debian/Ubuntu) to fetch" \
    "and unpack the Debian packages ${PACKAGES[*]}" >&2
  exit 1
fi

start=$SECONDS
mkdir -p "$cache/corpora"
tmp=$(mktemp -d "$cache/corpora/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/debs" "$tmp/x"

echo "building the corpus from Debian packages: ${PACKAGES[*]} ..." >&2
download() { (cd "$tmp/debs" && apt-get download "${PACKAGES[@]}") >&2; }
if ! download; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "apt-get download failed; running apt-get update (as root) and retrying" >&2
    apt-get update >&2
    download
  else
    echo "error: apt-get download ${PACKAGES[*]} failed; the package lists may be empty:" \
      "run 'apt-get update' as root, then this script again" >&2
    exit 1
  fi
fi

for pkg in "${PACKAGES[@]}"; do
  debs=("$tmp/debs/${pkg}_"*.deb)
  if [ ! -f "${debs[0]}" ]; then
    echo "error: apt-get download left no .deb for $pkg" >&2
    exit 1
  fi
  dpkg-deb -x "${debs[0]}" "$tmp/x/$pkg"
done

python3 "$here/build_corpus.py" "$tmp/x" "$tmp/human-dev.jsonl.gz"
mv -f "$tmp/human-dev.jsonl.gz" "$dest"
echo "built $dest ($(stat -c %s "$dest") bytes) in $((SECONDS - start)) s" >&2
abspath "$dest"
