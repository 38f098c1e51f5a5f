#!/usr/bin/env bash
# What `lsp-verify check` says of a staged change that holds no function to check - a data file, a test
# module, conftest.py, a deleted module or package - and of a docs change (a control), now and at an
# earlier revision, side by side. Each library is a git repository of an unmodified source tree with its own
# .venv (pytest and what its tests import; see bench/results/realworld-unmodified-2026-12-06.md); the change
# is staged, checked, then undone with `git reset --hard`.
#   BEFORE=/path/to/older/checkout LIBS=/tmp/libs bash bench/check_outside_functions.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
libs=${LIBS:?LIBS: the directory holding the library checkouts}
before=${BEFORE:-}
echo "revision $(git -C "$repo" rev-parse --short HEAD); before: ${before:+$(git -C "$before" rev-parse --short HEAD)}; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# library directory | what the change is | the shell command that makes it
cases=(
  "pytz-2024.2|tzfile US/Eastern replaced by US/Central's|cp pytz/zoneinfo/US/Central pytz/zoneinfo/US/Eastern"
  "tomlkit-0.13.2|expected JSON tests/examples/json/0.5.0.json edited|sed -i '0,/1979/s//1980/' tests/examples/json/0.5.0.json"
  "tomlkit-0.13.2|tests/conftest.py: fixture json_example reads .toml|sed -i 's/name + \".json\"/name + \".toml\"/' tests/conftest.py"
  "tomlkit-0.13.2|module tomlkit/_utils.py deleted|git rm -q tomlkit/_utils.py"
  "markdown-3.7|expected tests/basic/auto-links.html edited|sed -i '0,/<p>/s//<p class=x>/' tests/basic/auto-links.html"
  "markdown-3.7|package markdown/extensions deleted whole (23 files)|git rm -rq markdown/extensions"
  "funcy-2.1|tests/test_colls.py assertion edited|sed -i '0,/== \[/s//== [0, /' tests/test_colls.py"
  "tomlkit-0.13.2|README.md edited (control)|echo more >> README.md"
  "markdown-3.7|docs/index.md edited (control)|echo more >> docs/index.md"
  "pytz-2024.2|README.rst edited (control)|echo more >> README.rst"
)
echo "| library | staged change | side | exit | seconds | first verdict (or last note) |"
echo "|---|---|---|---:|---:|---|"
for case in "${cases[@]}"; do
  IFS='|' read -r name label change <<< "$case"
  cd "$libs/$name" || { echo "$libs/$name: missing" >&2; continue; }
  git reset -q --hard && git clean -qfd
  bash -c "$change" && git add -A
  for side in now ${before:+before}; do
    server=$repo/server; [ "$side" = before ] && server=$before/server
    start=$(date +%s)
    out=$(PYTHONPATH=$server timeout 900 "$py" -m lsp_verify check 2>/dev/null); rc=$?
    first=$(echo "$out" | grep -m1 -E "^(FAIL|ERROR)" | cut -c1-200)
    [ -n "$first" ] || first=$(echo "$out" | tail -2 | head -1 | cut -c1-200)
    echo "| $name | $label | $side | $rc | $(( $(date +%s) - start )) | ${first//|/\\|} |"
  done
  git reset -q --hard && git clean -qfd
done
