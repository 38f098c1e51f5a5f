#!/usr/bin/env bash
# `lsp-verify check --all` on benchmark libraries vs one plain pytest run of their suites, side by side
# (pytest, check, pytest, per library), each library a fresh git copy of the source tree that
# `python bench/realworld.py` unpacked into its cache (run that once first). Prints what it measured.
#   bash bench/check_all_realworld.sh [LIBRARY-VERSION ...]    default: inflection-0.5.1 toolz-1.0.0
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
src=${LSP_VERIFY_BENCH_SRC:-$HOME/.cache/lsp-verify/bench/realworld/src}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "revision $(git -C "$repo" rev-parse --short HEAD); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
libraries=("$@")
[ ${#libraries[@]} -gt 0 ] || libraries=(inflection-0.5.1 toolz-1.0.0)
for name in "${libraries[@]}"; do
  [ -d "$src/$name" ] || { echo "$src/$name: not unpacked (run python bench/realworld.py once)" >&2; exit 2; }
  cp -r "$src/$name" "$work/$name" && cd "$work/$name"
  git init -q && git add -A && git -c user.email=bench@localhost -c user.name=bench commit -qm base
  for run in pytest check pytest; do
    start=$(date +%s.%N)
    if [ "$run" = pytest ]; then
      result=$(PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -q -p no:cacheprovider 2>&1 | tail -1)
    else
      PYTHONPATH=$repo/server XDG_CACHE_HOME=$work/cache "$py" -m lsp_verify check --all --format json \
        > "$work/$name.json" 2> "$work/$name.err" || true
      result=$("$py" -c 'import collections, json, sys
fs = json.load(open(sys.argv[1]))["functions"]
print(len(fs), "functions:", dict(collections.Counter(f["status"] for f in fs)))' "$work/$name.json")
    fi
    printf '%s  %-6s %6.1f s  %s\n' "$name" "$run" "$(echo "$(date +%s.%N) - $start" | bc)" "$result"
  done
done
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)"
