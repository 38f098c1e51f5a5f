"""``report-schema.json`` is a valid JSON Schema, ships with the package, and matches what ``--format json``
emits: every kind of record (pass with a diff, fail, error, fatal error) validates, and no field drifts."""

from __future__ import annotations

import json
import typing
from importlib import resources
from typing import Any

import jsonschema
import pytest

from lsp_verify.report import (
    SCHEMA_VERSION,
    FunctionReport,
    RunReport,
    Status,
    as_json,
    render_json,
    render_text,
)
from lsp_verify.verify.types import Evidence


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = (resources.files("lsp_verify") / "report-schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def full_report() -> RunReport:
    return RunReport(
        command="fix",
        root="/work/proj",
        functions=[
            FunctionReport(
                file="pkg/m.py",
                qualname="Stack.push",
                line=12,
                status="pass",
                evidence="tests",
                message="verified",
                tests_selected=("tests/test_m.py::test_push",),
                tests_passed=("tests/test_m.py::test_push",),
                tests_fixed=("tests/test_m.py::test_push",),
                diff="--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1 +1 @@\n-x\n+y\n",
                applied=True,
                seconds=1.25,
            ),
            FunctionReport(
                file="pkg/m.py",
                qualname="f",
                line=3,
                status="fail",
                evidence="none",
                message="mypy: line 4: bad",
                mypy_new_errors=("line 4: bad  [return-value]",),
                tests_failed=("tests/test_m.py::test_f",),
                details=("tests/test_m.py::test_f failed: assert 1 == 2",),
            ),
            FunctionReport("pkg/n.py", "g", 1, "error", "none", "tests cannot be collected"),
        ],
        problems=["pyproject.toml [tool.lsp-verify]: unknown setting 'kk' (ignored)"],
        notes=["a note"],
    )


def test_every_kind_of_record_validates(schema: dict[str, Any]) -> None:
    data = json.loads(render_json(full_report()))

    jsonschema.validate(data, schema)
    assert data["schema_version"] == SCHEMA_VERSION == schema["properties"]["schema_version"]["const"]
    assert data["exit_code"] == 2
    assert data["summary"] == {"functions": 3, "passed": 1, "failed": 1, "errors": 1}


def test_a_fatal_error_with_no_functions_validates(schema: dict[str, Any]) -> None:
    data = as_json(RunReport(command="check", root="/r", error="not in a git repository"))

    jsonschema.validate(data, schema)
    assert data["exit_code"] == 2 and data["functions"] == []


def test_schema_and_emitted_fields_agree(schema: dict[str, Any]) -> None:
    data = as_json(full_report())
    function_schema = schema["$defs"]["function"]

    assert set(data) == set(schema["properties"]) == set(schema["required"])
    assert set(data["functions"][0]) == set(function_schema["properties"]) == set(function_schema["required"])
    assert set(function_schema["properties"]["status"]["enum"]) == set(typing.get_args(Status))
    assert set(function_schema["properties"]["evidence"]["enum"]) == {e.value for e in Evidence}


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "passed"), ("line", 0), ("evidence", "vibes"), ("diff", 3)],
)
def test_the_schema_rejects_malformed_records(schema: dict[str, Any], field: str, value: object) -> None:
    data = as_json(full_report())
    data["functions"][0][field] = value

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_a_detail_every_function_carries_is_said_once_in_text() -> None:
    shared = "tests/test_x.py::TestSuite fails to collect in a run of the whole suite (...)"
    report = RunReport(
        command="check",
        root="/work/proj",
        functions=[
            FunctionReport("m.py", "f", 1, "pass", "tests", "ok", details=(shared,)),
            FunctionReport("m.py", "g", 5, "fail", "tests", "broke", details=("g's own", shared)),
        ],
    )
    lines = render_text(report).splitlines()
    assert lines[:3] == ["PASS  m.py:1 f — ok", "FAIL  m.py:5 g — broke", "      g's own"]
    assert [line for line in lines if shared in line] == [f"every function above: {shared}"]
    # One function: its details stay under it; JSON always keeps every function's details.
    alone = RunReport(command="check", root="/r", functions=report.functions[:1])
    assert render_text(alone).splitlines()[1] == f"      {shared}"
    assert all(shared in f["details"] for f in json.loads(render_json(report))["functions"])
