#!/usr/bin/env bash
# Install everything the test suite needs, then run it. This is the README's test command and what CI runs.
#   - Python: a virtual environment in .venv with lsp-verify (editable), the embedded model and dev tools
#   - Debian: neovim (a real editor as LSP client in the end-to-end tests), bubblewrap (sandbox for test runs)
#   - npm: the VS Code extension's dependencies, compiled with strict TypeScript
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not model"`.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! command -v nvim >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1; then
    echo "== apt-get install neovim bubblewrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends neovim bubblewrap >/dev/null
  fi
else
  command -v nvim >/dev/null 2>&1 || echo "note: nvim not found; the Neovim end-to-end test will be skipped" >&2
  command -v bwrap >/dev/null 2>&1 || echo "note: bwrap not found; tests run without bubblewrap isolation" >&2
fi

echo "== python environment (.venv)" >&2
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# llama-cpp-python compiles llama.cpp from source the first time (several minutes on 2 cores; pip caches it).
.venv/bin/python -m pip install -q -e '.[model,dev,bench]'

if command -v npm >/dev/null 2>&1; then
  echo "== VS Code extension (npm ci, strict tsc)" >&2
  (cd client-vscode && npm ci --no-audit --no-fund --loglevel=error && npm run -s compile)
else
  echo "note: npm not found; the VS Code extension tests will be skipped" >&2
fi

echo "== lint and types" >&2
.venv/bin/ruff check server tests bench
.venv/bin/ruff format --check server tests bench
.venv/bin/mypy --strict server/lsp_verify

echo "== model (assembled once into the cache, hash verified)" >&2
.venv/bin/lsp-verify doctor

echo "== llama-server (built once into ~/.cache/lsp-verify/llama-server; the remote-engine tests use it)" >&2
bash scripts/build-llama-server.sh

workers=${LSP_VERIFY_TEST_WORKERS:-3}
status=0
pytest_phase() {  # one pytest run; exit code 5 (nothing selected in this phase) is not a failure
  local rc=0
  # --durations: the slowest tests are named in every run's log, so a suite that grows slow says where.
  .venv/bin/python -m pytest -ra --durations=30 "$@" || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then status=$rc; fi
}
# Two phases. The tests without the model run on three workers (pytest-xdist): they mostly wait on the
# processes they start (language servers, mypy, pytest runs), and one worker kept 2 cores a quarter busy.
# The tests that decode with the model then run one after the other on a quiet machine: llama.cpp's
# threads spin while they wait for each other, and next to other work on 2 cores a 6 s test took 90-160 s.
# 2026-12-05, 2 cores: all in one process 17:34. 2026-12-07: the projects the tests make run pytest without
# this environment's plugins (tests/conftest.py), and the first phase went from 13:46 to 8:03 here.
# A `-m` of your own, or LSP_VERIFY_TEST_WORKERS=0: one phase, in this process.
own_marker=false
for arg in "$@"; do
  case $arg in -m*) own_marker=true ;; esac
done
if [ "$workers" = 0 ] || [ "$own_marker" = true ]; then
  echo "== pytest" >&2
  pytest_phase "$@"
else
  echo "== pytest: the tests without the model ($workers workers)" >&2
  pytest_phase -n "$workers" -m "not model" "$@"
  echo "== pytest: the tests with the model (one after the other)" >&2
  pytest_phase -m model "$@"
fi

# The sandbox must hold without bubblewrap too (macOS, most non-root Linux users): run its tests and the
# hostile-repository tests again with bubblewrap hidden (about a minute).
if [ -z "${LSP_VERIFY_HIDE_BWRAP:-}" ] && command -v bwrap >/dev/null 2>&1; then
  echo "== pytest: sandbox and hostile-repository tests with bubblewrap hidden (LSP_VERIFY_HIDE_BWRAP=1)" >&2
  LSP_VERIFY_HIDE_BWRAP=1 .venv/bin/python -m pytest -ra -q \
    tests/test_sandbox.py tests/test_shadow.py tests/test_hostile_processes.py || status=$?
fi
exit "$status"
