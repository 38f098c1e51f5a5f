"""``lsp-verify fix`` reports when each function's first verified suggestion existed (``first_verified_s``).

The pipeline, mypy and pytest are real; the engine is scripted so the order and content of the candidates is
known: a wrong body finishes first, then a right one.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from lsp_verify.config import Settings
from lsp_verify.fix import FixOptions, run_fix
from lsp_verify.pipeline import Pipeline
from lsp_verify.report import RunReport, as_json
from test_pipeline import ScriptedEngine

MODULE = '''def add(a: int, b: int) -> int:
    """Return the sum of ``a`` and ``b``."""
    ...
'''
TESTS = """from mathx.ops import add


def test_add() -> None:
    assert add(2, 3) == 5
"""


def fix(
    tmp_path: Path, bodies: list[str], *, require_tests: bool = False, lead_sequence: bool = True
) -> tuple[dict[str, Any], ScriptedEngine]:
    root = tmp_path / "proj"
    (root / "mathx").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "mathx"\nversion = "0"\n', encoding="utf-8")
    (root / "mathx" / "__init__.py").write_text("", encoding="utf-8")
    (root / "mathx" / "ops.py").write_text(MODULE, encoding="utf-8")
    (root / "tests" / "test_ops.py").write_text(TESTS, encoding="utf-8")
    engine = ScriptedEngine([bodies], indent="")

    def settings_for(_: Path) -> Settings:
        return dataclasses.replace(
            Settings(),
            trusted=True,
            k=len(bodies),
            repair_rounds=0,
            require_tests=require_tests,
            lead_sequence=lead_sequence,
            test_timeout_s=120.0,
            mypy_timeout_s=300.0,
        )

    report: RunReport = run_fix(
        FixOptions(specs=("mathx/ops.py",)),
        settings_for=settings_for,
        cwd=root,
        pipeline_factory=lambda settings: Pipeline(settings, engine_factory=lambda _: engine),  # type: ignore[arg-type,return-value]
    )
    data = as_json(report)
    schema = json.loads((resources.files("lsp_verify") / "report-schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)
    return data, engine


def test_fix_json_says_when_the_first_verified_suggestion_existed(tmp_path: Path) -> None:
    data, engine = fix(tmp_path, ["    return a - b", "    return a + b"])

    (function,) = data["functions"]
    assert function["status"] == "pass", function
    # The message ends with the whole request's time: the first verified suggestion came no later.
    request_s = float(function["message"].rsplit(", ", 1)[1].rstrip("s"))
    assert 0 < function["first_verified_s"] <= request_s + 0.05
    assert [p.lead for p in engine.params] == [True], "lead_sequence is on by default"


def test_lead_sequence_off_batches_all_k(tmp_path: Path) -> None:
    data, engine = fix(tmp_path, ["    return a + b", "    return a + b"], lead_sequence=False)

    assert data["functions"][0]["status"] == "pass"
    assert [(p.k, p.lead) for p in engine.params] == [(2, False)]


def test_fix_json_has_no_first_verified_time_when_nothing_passed(tmp_path: Path) -> None:
    data, _ = fix(tmp_path, ["    return a - b"])

    (function,) = data["functions"]
    assert function["status"] == "fail"
    assert function["first_verified_s"] is None
