"""A module too large for the model's context still gets a prompt: the context farthest from the function is
cut first (``model.prompts.fit_prompt``), and a function that alone does not fit is a clear one-line error.

The unit tests count tokens with the conservative estimate; the ``fix`` tests run the real pipeline and
verifier with an engine that tokenizes and refuses an oversized prompt as llama.cpp's does; the last test
runs the real model on such a module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.fix import FixOptions, run_fix
from lsp_verify.model.prompts import PromptContext, PromptTooLarge, estimate_tokens, fit_prompt
from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
from lsp_verify.pipeline import Pipeline
from lsp_verify.report import RunReport

SERVER = Path(__file__).resolve().parents[1] / "server"
N_CONSTANTS = 6000
STUB = '''

def add(a: int, b: int) -> int:
    """Return the sum of ``a`` and ``b``."""
    ...
'''
TESTS = """\
from mathx.ops import add


def test_add() -> None:
    assert add(2, 3) == 5
"""


def many_constants(n: int = N_CONSTANTS) -> str:
    lines = ['"""A module of many constants and one stub."""', "", "import math", ""]
    lines += [f"LIMIT_{i} = {i} * 1000  # the {i}th limit" for i in range(n)]
    return "\n".join(lines) + "\n" + STUB


def context(module: str, *, docstring: str = '"""Return the sum of ``a`` and ``b``."""') -> PromptContext:
    constants = "\n".join(line for line in module.splitlines() if line.startswith(("import ", "LIMIT_")))
    return PromptContext(
        path=Path("ops.py"),
        imports=constants,
        class_header=None,
        header="def add(a: int, b: int) -> int:",
        docstring="    " + docstring,
        indent="    ",
        prefix=module.split("    ...")[0],
        suffix="\n",
        tests=TESTS,
        signatures_nearby=tuple(f"def helper_{i}(x: int) -> int: ..." for i in range(40)),
    )


@pytest.mark.parametrize("fmt", ["chat", "fim"])
def test_a_prompt_over_budget_keeps_the_function_and_the_context_nearest_it(fmt: str) -> None:
    ctx = context(many_constants())
    assert estimate_tokens(ctx.imports) > 1000

    prompt = fit_prompt(ctx, fmt, count_tokens=estimate_tokens, budget=1000)  # type: ignore[arg-type]

    assert estimate_tokens(prompt.text) <= 1000
    assert "def add(a: int, b: int) -> int:" in prompt.text
    assert "Return the sum of ``a`` and ``b``." in prompt.text
    assert f"LIMIT_{N_CONSTANTS - 1} = " in prompt.text, "the constant nearest the function is kept"
    assert "LIMIT_0 = " not in prompt.text, "the farthest constant is cut"
    if fmt == "chat":
        assert "import math" in prompt.text


def test_a_prompt_that_fits_is_not_cut() -> None:
    ctx = context(many_constants(20))
    full = fit_prompt(ctx, "chat", count_tokens=estimate_tokens, budget=100_000)
    assert "LIMIT_0 = " in full.text and "helper_0" in full.text and "def test_add" in full.text


def test_a_function_that_alone_does_not_fit_is_a_clear_error() -> None:
    ctx = context(many_constants(20), docstring='"""' + "Explain at length. " * 2000 + '"""')
    with pytest.raises(PromptTooLarge, match=r"ops.py: too large for the model's context: .* raise n_ctx"):
        fit_prompt(ctx, "chat", count_tokens=estimate_tokens, budget=1000)


class TokenizingEngine:
    """Writes one body; counts tokens (3 bytes each) and refuses a prompt over its budget as llama.cpp's
    engine does (``Engine._check_budget``)."""

    def __init__(self, body: str, n_ctx: int = 2048) -> None:
        self.body = body
        self.info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, n_ctx, 1)
        self.prompt_tokens: list[int] = []

    def tokenize(self, text: str) -> list[int]:
        return [0] * (len(text.encode()) // 3 + 1)

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Generation]:
        n_prompt = len(self.tokenize(prompt.text))
        self.prompt_tokens.append(n_prompt)
        if n_prompt + params.k * params.max_tokens > self.info.n_ctx:
            raise ValueError(f"prompt too long for the context: {n_prompt} tokens")
        generation = Generation(0, self.body + "\n", 5, -0.1, "stop", 0.01)
        if on_generation is not None:
            on_generation(generation)
        return [generation]

    def close(self) -> None:
        pass


def make_project(root: Path, module: str) -> Path:
    (root / "mathx").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "mathx"\nversion = "0"\n', encoding="utf-8")
    (root / "mathx" / "__init__.py").write_text("", encoding="utf-8")
    (root / "mathx" / "ops.py").write_text(module, encoding="utf-8")
    (root / "tests" / "test_ops.py").write_text(TESTS, encoding="utf-8")
    return root


def fix(project: Path, engine: TokenizingEngine) -> RunReport:
    def settings_for(root: Path) -> Settings:
        return dataclasses.replace(Settings(), trusted=True, k=1, test_timeout_s=120.0, mypy_timeout_s=300.0)

    return run_fix(
        FixOptions(specs=("mathx/ops.py",), apply=True),
        settings_for=settings_for,
        cwd=project,
        pipeline_factory=lambda settings: Pipeline(settings, engine_factory=lambda _: engine),  # type: ignore[arg-type,return-value]
    )


def test_fix_on_a_module_of_many_constants_fits_the_prompt_and_verifies(tmp_path: Path) -> None:
    module = many_constants()
    project = make_project(tmp_path / "proj", module)
    engine = TokenizingEngine("    return a + b")

    report = fix(project, engine)

    assert report.error is None, report.error
    (outcome,) = report.functions
    assert (outcome.status, outcome.applied) == ("pass", True), outcome
    assert engine.prompt_tokens and engine.prompt_tokens[0] <= 2048 - 256
    assert (project / "mathx" / "ops.py").read_text(encoding="utf-8") == module.replace(
        "    ...", "    return a + b"
    )


def test_fix_on_a_function_too_large_for_the_context_says_so_and_touches_nothing(tmp_path: Path) -> None:
    huge = STUB.replace("Return the sum", "Return the sum. " + "Explain at length. " * 2000)
    module = many_constants(10).replace(STUB, huge)
    project = make_project(tmp_path / "proj", module)

    report = fix(project, TokenizingEngine("    return a + b"))

    (outcome,) = report.functions
    assert outcome.status == "error" and "too large for the model's context" in outcome.message
    assert "\n" not in outcome.message
    assert report.exit_code == 2
    assert (project / "mathx" / "ops.py").read_text(encoding="utf-8") == module


@pytest.mark.model
def test_the_model_on_a_module_of_many_constants_gives_a_clear_result(tmp_path: Path) -> None:
    from lsp_verify.model.source import default_cache_dir

    project = make_project(tmp_path / "proj", many_constants())
    # A small context makes the point as well as the default one (the module is far bigger than either)
    # and decodes a quarter of the prompt.
    with (project / "pyproject.toml").open("a", encoding="utf-8") as pyproject:
        pyproject.write("\n[tool.lsp-verify]\nn_ctx = 1024\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(SERVER),
        "LSP_VERIFY_CACHE": str(default_cache_dir()),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsp_verify",
            "fix",
            "mathx/ops.py",
            *("-k", "2", "--max-tokens", "64"),
            "--seed",
            "0",
            "--format",
            "json",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )

    assert "Traceback" not in proc.stderr, proc.stderr
    (outcome,) = json.loads(proc.stdout)["functions"]
    assert outcome["status"] in ("pass", "fail"), outcome  # a verdict, not an error
