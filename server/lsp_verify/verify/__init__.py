"""Verification: shadow workspace, sandboxed runs, mypy, nearby tests, the cascade, ranking."""
