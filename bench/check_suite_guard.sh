#!/usr/bin/env bash
# What check's whole-suite guard costs: `lsp-verify check --changed FILE` on one mutant per library, with
# suite_guard_timeout_s = 0 (nearby tests only) and 300 (the default) alternating, twice, side by side. Each
# library is a fresh git copy of the source tree `python bench/realworld.py` unpacked into its cache (run that
# once first); the mutant is a one-line change its own tests catch. Prints what it measured.
#   bash bench/check_suite_guard.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
src=${LSP_VERIFY_BENCH_SRC:-$HOME/.cache/lsp-verify/bench/realworld/src}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "revision $(git -C "$repo" rev-parse --short HEAD); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# library, file, the line's text, its mutant
mutants=(
  "toolz-1.0.0|toolz/itertoolz.py|        d[item] += 1|        d[item] += 2"
  "more-itertools-10.5.0|more_itertools/more.py|    return sum(compress(repeat(1), zip(iterable)))|    return sum(compress(repeat(1), zip(iterable))) + 1"
)
for mutant in "${mutants[@]}"; do
  IFS='|' read -r name file line changed <<< "$mutant"
  [ -d "$src/$name" ] || { echo "$src/$name: not unpacked (run python bench/realworld.py once)" >&2; exit 2; }
  cp -r "$src/$name" "$work/$name" && cd "$work/$name"
  git init -q && git add -A && git -c user.email=bench@localhost -c user.name=bench commit -qm base
  LINE=$line CHANGED=$changed "$py" - "$file" <<'PY'
import os, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
assert text.count(os.environ["LINE"] + "\n") == 1, "the mutated line is not unique"
open(path, "w", encoding="utf-8").write(text.replace(os.environ["LINE"] + "\n", os.environ["CHANGED"] + "\n"))
PY
  [ -f pyproject.toml ] && cp pyproject.toml "$work/$name.pyproject" || : > "$work/$name.pyproject"
  for round in 1 2; do
    for guard in 0 300; do
      { cat "$work/$name.pyproject"; printf '\n[tool.lsp-verify]\nsuite_guard_timeout_s = %s\n' "$guard"; } > pyproject.toml
      start=$(date +%s.%N)
      PYTHONPATH=$repo/server XDG_CACHE_HOME=$work/cache "$py" -m lsp_verify check --changed "$file" \
        --format json > "$work/out.json" 2> /dev/null || true
      result=$("$py" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r["summary"], "|", "; ".join(n for n in r["notes"] if "whole test suite" in n))' "$work/out.json")
      printf '%s  guard=%-3s %6.1f s  %s\n' "$name" "$guard" "$(echo "$(date +%s.%N) - $start" | bc)" "$result"
    done
  done
done
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)"
