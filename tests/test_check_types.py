"""``lsp-verify check`` type-checks what imports the change: a caller no test runs still breaks.

A function's own check runs mypy on its file alone, with the rest of the change in its baseline too, so a
changed signature that breaks a caller in another module, a name removed from under an importer, or a
module-level statement mypy rejects passed it. The type guard runs mypy over the changed modules and the
modules that import them, with the change and without it. Each test stages a change in a throw-away
repository and runs the real command, as a pre-commit hook would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import gitrepo
from lsp_verify.syntax.imports import ModuleImports, imported_modules, importers
from test_check import cli_env

RATES = '''\
"""Rates."""

LIMIT: int = 3


def rate(base: int) -> int:
    return base * 2


def bonus(base: int) -> int:
    return base + 1
'''

# Nothing tests `invoice`: only mypy can tell that a change to `rate` breaks it.
BILLING = """\
from shop.rates import rate


def invoice(amount: int) -> int:
    return rate(amount) + 1
"""

TESTS = """\
from shop.rates import bonus, rate


def test_rate() -> None:
    assert rate(2) == 4


def test_bonus() -> None:
    assert bonus(2) == 3
"""


STRING_RATE = RATES.replace(
    "def rate(base: int) -> int:\n    return base * 2",
    "def rate(base: int) -> str:\n    return str(base * 2)",
)
STRING_TESTS = TESTS.replace("rate(2) == 4", "rate(2) == '4'")


def make_shop(root: Path, **extra: str) -> Path:
    files = {
        "pyproject.toml": '[project]\nname = "shop"\nversion = "0"\n',
        "shop/__init__.py": "",
        "shop/rates.py": RATES,
        "shop/billing.py": BILLING,
        "tests/test_rates.py": TESTS,
        **extra,
    }
    return gitrepo.make_repo(root, files)


def stage(repo: Path, files: dict[str, str | None]) -> None:
    for relpath, text in files.items():
        if text is None:
            (repo / relpath).unlink()
        else:
            (repo / relpath).write_text(text, encoding="utf-8")
    gitrepo.git(repo, "add", "-A")


def check(repo: Path, tmp_path: Path) -> tuple[int, dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", "--format", "json"],
        cwd=repo,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def verdicts(report: dict[str, object]) -> dict[str, tuple[str, str]]:
    functions = report["functions"]
    assert isinstance(functions, list)
    return {f"{f['file']}:{f['qualname']}": (f["status"], f["message"]) for f in functions}


@pytest.mark.parametrize(
    ("changed", "tests", "error"),
    [
        (
            STRING_RATE,
            STRING_TESTS,
            'shop/billing.py: line 5: Unsupported operand types for + ("str" and "int")  [operator]',
        ),
        (
            RATES.replace("def rate(base: int) -> int:", "def rate(base: int, tax: int) -> int:"),
            TESTS.replace("rate(2) == 4", "rate(2, 0) == 4"),
            'shop/billing.py: line 5: Missing positional argument "tax" in call to "rate"  [call-arg]',
        ),
    ],
    ids=["return-type", "new-parameter"],
)
def test_a_signature_change_that_breaks_a_caller_no_test_runs_fails_the_function(
    tmp_path: Path, changed: str, tests: str, error: str
) -> None:
    repo = make_shop(tmp_path / "repo")
    # The test is updated with the function, so every test passes: only billing.py is broken.
    stage(repo, {"shop/rates.py": changed, "tests/test_rates.py": tests})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    status, message = verdicts(report)["shop/rates.py:rate"]
    assert status == "fail", message
    assert message.startswith(f"mypy: {error}: not reported with rate as HEAD has it"), message
    assert "found by type-checking shop/billing.py, which imports the change" in message


def test_a_function_that_fails_its_own_tests_also_lists_the_callers_errors_its_change_adds(
    tmp_path: Path,
) -> None:
    # The test is not updated: rate fails it, and that stays the reason; billing.py's new error is listed too.
    repo = make_shop(tmp_path / "repo")
    stage(repo, {"shop/rates.py": STRING_RATE})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    functions = report["functions"]
    assert isinstance(functions, list)
    (rate,) = [f for f in functions if f["qualname"] == "rate"]
    assert rate["status"] == "fail" and rate["message"].startswith("tests: "), rate
    assert rate["mypy_new_errors"] == [
        'shop/billing.py: line 5: Unsupported operand types for + ("str" and "int")  [operator]'
    ], rate


def test_a_change_the_callers_accept_passes_though_their_old_errors_name_it(tmp_path: Path) -> None:
    # billing.py has an error already, and its message names rate's signature, which the change widens: the
    # same error at the same line, reworded, is not a new one.
    old = BILLING + "\n\nPRICING: str = rate\n"
    repo = make_shop(tmp_path / "repo", **{"shop/billing.py": old})
    stage(
        repo,
        {
            "shop/rates.py": RATES.replace(
                "def rate(base: int) -> int:", "def rate(base: int, tax: int = 0) -> int:"
            )
        },
    )

    code, report = check(repo, tmp_path)

    assert code == 0, report
    assert verdicts(report) == {"shop/rates.py:rate": ("pass", "mypy: no new errors, tests: 2/2 passed")}


def test_a_module_level_statement_mypy_rejects_fails_the_file(tmp_path: Path) -> None:
    repo = make_shop(tmp_path / "repo")
    stage(repo, {"shop/rates.py": RATES.replace("LIMIT: int = 3", "LIMIT: int = '3'")})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    status, message = verdicts(report)["shop/rates.py:<module>"]
    assert status == "fail"
    assert message == (
        "mypy: shop/rates.py: line 3: Incompatible types in assignment (expression has type "
        '"str", variable has type "int")  [assignment]: not reported with this file as HEAD has it'
    )


def test_a_caller_that_imports_the_function_from_its_package_is_type_checked_too(tmp_path: Path) -> None:
    # billing imports rate from the package, which re-exports it: the package is how the change reaches it.
    repo = make_shop(
        tmp_path / "repo",
        **{
            "shop/__init__.py": "from shop.rates import rate as rate\n",
            "shop/billing.py": BILLING.replace("from shop.rates import rate", "from shop import rate"),
        },
    )
    stage(repo, {"shop/rates.py": STRING_RATE, "tests/test_rates.py": STRING_TESTS})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    status, message = verdicts(report)["shop/rates.py:rate"]
    assert status == "fail"
    assert message.startswith("mypy: shop/billing.py: line 5: Unsupported operand types"), message


def test_a_deleted_module_fails_where_an_untested_module_imports_it(tmp_path: Path) -> None:
    repo = make_shop(
        tmp_path / "repo",
        **{"shop/fees.py": "FEE: int = 1\n", "shop/billing.py": BILLING + "from shop.fees import FEE\n"},
    )
    stage(repo, {"shop/fees.py": None})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    status, message = verdicts(report)["shop/fees.py:<module>"]
    assert status == "fail"
    assert message.startswith(
        "mypy: shop/billing.py: line 6: Cannot find implementation or library stub for module named "
        '"shop.fees"'
    ), message
    assert message.endswith("not reported with this file, which the change deletes, as HEAD has it"), message


def test_two_changed_files_charge_the_caller_s_error_to_the_changed_signature(tmp_path: Path) -> None:
    repo = make_shop(tmp_path / "repo")
    # billing.py changes too (a comment), so its own check sees rate's change on both sides.
    stage(
        repo,
        {
            "shop/rates.py": STRING_RATE,
            "shop/billing.py": BILLING.replace(
                "return rate(amount) + 1", "return rate(amount) + 1  # and a fee"
            ),
            "tests/test_rates.py": STRING_TESTS,
        },
    )

    code, report = check(repo, tmp_path)

    assert code == 1, report
    found = verdicts(report)
    assert found["shop/billing.py:invoice"][0] == "pass", found
    assert found["shop/rates.py:rate"][0] == "fail", found
    assert "shop/billing.py: line 5: Unsupported operand types" in found["shop/rates.py:rate"][1]


# ------------------------------------------------------------------------------------------ who imports what


def test_imports_name_modules_and_what_a_from_import_may_be() -> None:
    text = (
        "import a.b\nfrom c import d, e as f\nfrom . import sibling\nfrom ..up import g\nfrom .... import x\n"
    )

    assert imported_modules(text, "pkg.sub.mod", is_package=False) == {
        "a.b",
        "c",
        "c.d",
        "c.e",
        "pkg.sub",
        "pkg.sub.sibling",
        "pkg.up",
        "pkg.up.g",
    }
    assert imported_modules("from . import x\n", "pkg", is_package=True) == {"pkg", "pkg.x"}
    assert imported_modules("def (:\n", "m", is_package=False) is None


def test_importers_follow_packages_that_import_the_change() -> None:
    def module(names: set[str], imported: set[str], is_package: bool = False) -> ModuleImports:
        return ModuleImports(frozenset(names), frozenset(imported), is_package)

    files = {
        "pkg/__init__.py": module({"pkg"}, {"pkg.core", "pkg.core.f"}, is_package=True),
        "pkg/core.py": module({"pkg.core"}, set()),
        "pkg/direct.py": module({"pkg.direct"}, {"pkg", "pkg.core"}),
        "app.py": module({"app"}, {"pkg", "pkg.f"}),
        "other.py": module({"other"}, {"pkg2", "os"}),
        "sub.py": module({"sub"}, {"pkg.core.f.x"}),
    }

    assert importers(files, ["pkg.core"]) == ["app.py", "pkg/__init__.py", "pkg/direct.py", "sub.py"]
    assert importers(files, ["other"]) == []


def test_a_package_that_re_exports_the_change_is_reached_by_its_own_name_only() -> None:
    # pkg/__init__.py star-imports pkg.core: `import pkg` sees the change, `from pkg.other import g` runs
    # the same __init__.py but sees none of its names (before: every module of the package an importer).
    def module(names: set[str], imported: set[str], is_package: bool = False) -> ModuleImports:
        return ModuleImports(frozenset(names), frozenset(imported), is_package)

    files = {
        "pkg/__init__.py": module({"pkg"}, {"pkg.core"}, is_package=True),
        "pkg/core.py": module({"pkg.core"}, set()),
        "pkg/other.py": module({"pkg.other"}, set()),
        "app.py": module({"app"}, {"pkg"}),
        "tool.py": module({"tool"}, {"pkg.other", "pkg.other.g"}),
    }

    assert importers(files, ["pkg.core"]) == ["app.py", "pkg/__init__.py"]


def test_a_stub_that_now_disagrees_with_its_users_fails_the_stub(tmp_path: Path) -> None:
    # A stub holds no code to run: no test runs it, mypy alone reads it (before: every function of the .pyi
    # was an ERROR, "imports resolved outside the shadow workspace").
    repo = make_shop(
        tmp_path / "repo",
        **{"shop/rates.pyi": "def rate(base: int) -> int: ...\ndef bonus(base: int) -> int: ...\n"},
    )
    stage(repo, {"shop/rates.pyi": "def rate(base: int) -> str: ...\ndef bonus(base: int) -> int: ...\n"})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    assert verdicts(report) == {
        "shop/rates.pyi:<module>": (
            "fail",
            'mypy: shop/billing.py: line 5: Unsupported operand types for + ("str" and "int")  [operator]: '
            "not reported with this file as HEAD has it",
        )
    }


def test_importers_of_one_module_name_are_type_checked_one_by_one(tmp_path: Path) -> None:
    # Two scripts named tool.py: mypy refuses them in one run ("Duplicate module named 'tool'").
    script = "from shop.rates import rate\n\nTOTAL: int = rate({})\n"
    scripts = {"scripts/a/tool.py": script.format(2), "scripts/b/tool.py": script.format(3)}
    repo = make_shop(tmp_path / "repo", **scripts)
    stage(repo, {"shop/rates.py": STRING_RATE, "tests/test_rates.py": STRING_TESTS})

    code, report = check(repo, tmp_path)

    assert code == 1, report
    status, message = verdicts(report)["shop/rates.py:rate"]
    assert status == "fail"
    assert (
        "(and 2 more)" in message
        and "scripts/a/tool.py, scripts/b/tool.py, shop/billing.py, which import" in message
    )
    assert not [note for note in report["notes"] if "not type-checked" in note], report["notes"]
