#!/usr/bin/env bash
# What `lsp-verify check --all` says of unmodified libraries, now and at an earlier revision, side by side:
# each function's verdict and, for a pass, its evidence - "tests" (a test or doctest near it ran) or
# "types_only" (none did). An unmodified library must get no failure and no error, and a change to which
# tests are near a function shows as functions moving between the two. Each argument is a git checkout of
# an unmodified source tree with its own .venv (pytest and what its tests import; see
# bench/results/realworld-unmodified-2026-12-06.md). Reads nothing but the checkouts; writes to a temp dir.
#   BEFORE=/path/to/older/checkout bash bench/check_evidence.sh LIBRARY-CHECKOUT ...
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
before=${BEFORE:-}
[ $# -gt 0 ] || { echo "usage: BEFORE=<older checkout> bash $0 LIBRARY-CHECKOUT ..." >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "revision $(git -C "$repo" rev-parse --short HEAD); before: ${before:+$(git -C "$before" rev-parse --short HEAD)}; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %-7s %4s %6s  %s\n' library side exit time "verdicts; evidence of the passes"
for library in "$@"; do
  name=$(basename "$library")
  for side in ${before:+before} now; do
    server=$repo/server
    [ "$side" = before ] && server=$before/server
    start=$(date +%s.%N)
    (cd "$library" && PYTHONPATH=$server timeout 900 "$py" -m lsp_verify check --all --format json \
      > "$work/$name.$side.json" 2> "$work/$name.$side.err")
    code=$?
    summary=$("$py" -c 'import collections, json, sys
fs = json.load(open(sys.argv[1]))["functions"]
verdicts = dict(collections.Counter(f["status"] for f in fs))
evidence = dict(collections.Counter(f["evidence"] for f in fs if f["status"] == "pass"))
print(verdicts, evidence)' "$work/$name.$side.json" 2>/dev/null || echo "no report: $(tail -1 "$work/$name.$side.err")")
    printf '%-28s %-7s %4s %5.0fs  %s\n' "$name" "$side" "$code" "$(echo "$(date +%s.%N) - $start" | bc)" "$summary"
  done
done
