"""Prompt formats: rendering, stop rules, format choice; and with the real model, that the default chat
prompt yields bodies that parse and pass a toy function's tests."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest

from lsp_verify.model.engine import Engine
from lsp_verify.model.prompts import PromptContext, build_prompt, choose_format, fim_supported
from lsp_verify.model.source import ModelFile
from lsp_verify.model.types import SamplingParams
from lsp_verify.pipeline import candidate_from
from lsp_verify.syntax.context import prompt_pieces
from lsp_verify.syntax.targets import target_at

MODULE = '''import math


def hypot(a: float, b: float) -> float:
    """Length of the hypotenuse of a right triangle with legs a and b."""
    ...


def unrelated() -> None:
    pass
'''


def function_ctx(**overrides: object) -> PromptContext:
    body_start = MODULE.index("    ...")
    body_end = body_start + len("    ...")
    fields: dict[str, object] = {
        "path": Path("/work/geo.py"),
        "imports": "import math",
        "class_header": None,
        "header": "def hypot(a: float, b: float) -> float:",
        "docstring": '    """Length of the hypotenuse of a right triangle with legs a and b."""',
        "indent": "    ",
        "prefix": MODULE[:body_start],
        "suffix": MODULE[body_end:],
        "tests": "",
    }
    fields.update(overrides)
    return PromptContext(**fields)  # type: ignore[arg-type]


def method_ctx() -> PromptContext:
    return PromptContext(
        path=Path("/work/stack.py"),
        imports="",
        class_header="class Stack:\n    items: list[int]",
        header="    def pop(self) -> int:",
        docstring='        """Remove and return the top item."""',
        indent="        ",
        prefix="",
        suffix="",
    )


# ----------------------------------------------------------------------------------------------- chat


def test_chat_prompt_is_chatml_with_prefilled_header() -> None:
    prompt = build_prompt(function_ctx(tests="def test_hypot():\n    assert hypot(3, 4) == 5\n"), "chat")
    assert prompt.format == "chat"
    assert prompt.text.startswith("<|im_start|>system\n")
    assert prompt.text.count("<|im_start|>") == 3
    assert "<|im_start|>user\n" in prompt.text
    assert "assert hypot(3, 4) == 5" in prompt.text
    assert "import math" in prompt.text
    assert prompt.prefill == (
        "```python\ndef hypot(a: float, b: float) -> float:\n"
        '    """Length of the hypotenuse of a right triangle with legs a and b."""\n'
    )
    assert prompt.text.endswith("<|im_start|>assistant\n" + prompt.prefill)
    assert "```" in prompt.stop


def test_chat_prompt_for_a_method_prefills_the_class_line() -> None:
    prompt = build_prompt(method_ctx(), "chat")
    assert prompt.prefill.startswith(
        "```python\nclass Stack:\n    items: list[int]\n    def pop(self) -> int:\n"
    )
    assert prompt.prefill.endswith('        """Remove and return the top item."""\n')


def test_a_method_s_siblings_are_listed_apart_from_the_code_the_model_continues() -> None:
    siblings = ("def push(self, item: int) -> None: ...", "@property\ndef top(self) -> int: ...")
    prompt = build_prompt(dataclasses.replace(method_ctx(), class_methods=siblings), "chat")
    user = prompt.text.split("<|im_start|>assistant\n")[0]
    listed = "Other methods of the class:\n```python\ndef push(self, item: int) -> None: ...\n@property\n"
    assert listed in user
    assert "def push" not in prompt.prefill and "def top" not in prompt.prefill
    assert prompt.prefill.startswith("```python\nclass Stack:\n    items: list[int]\n    def pop(self)")


def test_feedback_and_signatures_are_shown() -> None:
    ctx = function_ctx(
        feedback="NameError: name 'sqrt' is not defined", signatures_nearby=("def unrelated() -> None",)
    )
    prompt = build_prompt(ctx, "chat")
    assert "NameError: name 'sqrt' is not defined" in prompt.text
    assert "def unrelated() -> None" in prompt.text


def test_chat_is_complete_on_closing_fence_or_dedent() -> None:
    done = build_prompt(function_ctx(), "chat").is_complete
    assert done is not None
    assert not done("    return math.hypot(a, b)\n")
    assert not done("    if a:\n        return a\n\n    ")  # blank and whitespace-only lines say nothing yet
    assert done("    return math.hypot(a, b)\n```")
    assert done("    return math.hypot(a, b)\n\nprint(")
    assert done("    return 1\ndef")


def test_method_is_complete_only_below_the_body_indent() -> None:
    done = build_prompt(method_ctx(), "chat").is_complete
    assert done is not None
    assert not done("        return self.items.pop()\n")
    assert done("        return self.items.pop()\n    def push(self")


# ----------------------------------------------------------------------------------------------- fim


def test_fim_prompt_wraps_prefix_and_suffix() -> None:
    prompt = build_prompt(function_ctx(), "fim")
    assert prompt.format == "fim"
    assert prompt.prefill == ""
    prefix = prompt.text.split("<|fim_suffix|>")[0]
    assert prefix.startswith("<|fim_prefix|>import math")
    # The prefix ends at a line boundary: the model writes whole, indented lines.
    assert prefix.endswith('with legs a and b."""\n')
    assert prompt.text.endswith("<|fim_middle|>")
    assert "def unrelated() -> None:" in prompt.text.split("<|fim_suffix|>")[1]
    done = prompt.is_complete
    assert done is not None
    assert done("    return 1\n\n\ndef unrelated")
    assert not done("    return 1\n")


def test_fim_prompt_keeps_long_files_short() -> None:
    filler = "".join(f"CONSTANT_{i} = {i}\n" for i in range(2000))
    ctx = function_ctx(prefix=filler + function_ctx().prefix, suffix=function_ctx().suffix + filler)
    prompt = build_prompt(ctx, "fim")
    assert len(prompt.text) < 7000
    assert "<|fim_prefix|>CONSTANT_" in prompt.text  # cut at a line boundary
    assert "def hypot(a: float, b: float) -> float:" in prompt.text


# ----------------------------------------------------------------------------------------------- choice


def test_choose_format(tmp_path: Path) -> None:
    plain = tmp_path / "plain.gguf"
    plain.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    assert choose_format(plain, "auto") == "chat"
    assert choose_format(plain, "chat") == "chat"
    assert not fim_supported(plain)
    assert choose_format(plain, "fim") == "chat"  # asked for, but the model has no FIM tokens
    assert not fim_supported(tmp_path / "missing.gguf")


@pytest.mark.model
def test_embedded_model_supports_fim(model_file: ModelFile) -> None:
    assert fim_supported(model_file.path)
    assert choose_format(model_file.path, "fim") == "fim"
    assert choose_format(model_file.path, "auto") == "chat"


# ----------------------------------------------------------------------------------------------- real model


@pytest.mark.model
def test_chat_prompt_gives_bodies_that_pass_a_toy_test(engine: Engine) -> None:
    prompt = build_prompt(function_ctx(), "chat")
    gens = engine.generate(prompt, SamplingParams(k=4, max_tokens=64, temperature=0.7, seed=0))
    passed = 0
    for gen in gens:
        assert gen.finish_reason in ("stop", "left_function", "eos"), gen
        body = gen.text.split("```")[0]
        lines = [line for line in body.split("\n") if line.strip()]
        assert lines and all(line.startswith("    ") for line in lines[:1])
        namespace: dict[str, object] = {}
        try:
            exec("import math\n" + prompt.prefill.removeprefix("```python\n") + body, namespace)
            passed += namespace["hypot"](3.0, 4.0) == pytest.approx(5.0)  # type: ignore[operator]
        except Exception:
            pass
    assert passed >= 2, [g.text for g in gens]


def _version_module() -> str:
    """A value class shaped like semver's Version: properties with setters, a score of other methods."""
    parts = [
        "class Version:\n"
        "    def __init__(self, major: int, minor: int, patch: int) -> None:\n"
        "        self._major = major\n        self._minor = minor\n        self._patch = patch\n"
    ]
    for name in ("major", "minor", "patch", "prerelease", "build"):
        parts.append(f"    @property\n    def {name}(self) -> int:\n        return self._{name}\n")
        parts.append(
            f"    @{name}.setter\n    def {name}(self, value: int) -> None:\n"
            '        raise AttributeError("read-only")\n'
        )
    for name in ("to_tuple", "to_dict", "__iter__", "bump_major", "bump_minor", "bump_prerelease", "compare",
                 "next_version", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__repr__",
                 "__str__", "__hash__", "finalize_version", "match", "bump_build"):  # fmt: skip
        parts.append(f"    def {name}(self, other: object = None) -> object:\n        return None\n")
    parts.append(
        '    def bump_patch(self) -> "Version":\n'
        '        """A new version with the patch part raised by one; this one is left as it is."""\n'
        "        raise NotImplementedError\n"
    )
    return "\n".join(parts)


@pytest.mark.model
def test_a_method_of_a_class_with_many_methods_gets_bodies(engine: Engine) -> None:
    """In a class of a real library the 0.5B model closed the code block at once when the pre-filled class
    listed the other methods as body-less stubs (semver's Version.bump_patch: nothing to verify)."""
    path, module = Path("/work/version.py"), _version_module()
    target = target_at(module, path, module.split("\n").index("        raise NotImplementedError"))
    pieces = prompt_pieces(module, target)
    ctx = PromptContext(
        path=path, imports=pieces.imports, class_header=pieces.class_header, header=pieces.header,
        docstring=pieces.docstring, indent=pieces.indent, prefix=pieces.prefix, suffix=pieces.suffix,
        class_methods=pieces.class_methods,
    )  # fmt: skip
    prompt = build_prompt(ctx, "chat")
    gens = engine.generate(prompt, SamplingParams(k=4, max_tokens=64, temperature=0.7, seed=0))
    right = 0
    for gen in gens:
        candidate = candidate_from(gen, prompt, module, target)
        if candidate is None:
            continue
        namespace: dict[str, object] = {}
        try:
            exec(candidate.new_text, namespace)
            version = namespace["Version"](1, 2, 3)  # type: ignore[operator]
            bumped = version.bump_patch()
            right += (bumped.major, bumped.minor, bumped.patch, version.patch) == (1, 2, 4, 3)
        except Exception:
            pass
    assert right >= 2, [g.text for g in gens]


@pytest.mark.model
def test_a_sequence_cannot_end_before_writing_anything(engine: Engine) -> None:
    """An empty answer is never a candidate. With the class's other methods as body-less stubs in the
    pre-filled code (the layout before 2026-12-06) the 0.5B model closes the code block before writing the
    body; while a sequence has written nothing but whitespace, the engine masks the end-of-generation tokens
    and those that start a stop string."""
    path, module = Path("/work/version.py"), _version_module()
    target = target_at(module, path, module.split("\n").index("        raise NotImplementedError"))
    pieces = prompt_pieces(module, target)
    stubs = [f"    {line}" for method in pieces.class_methods for line in method.split("\n")]
    ctx = PromptContext(
        path=path, imports=pieces.imports, class_header="\n".join([pieces.class_header or "", *stubs]),
        header=pieces.header, docstring=pieces.docstring, indent=pieces.indent, prefix="", suffix="",
    )  # fmt: skip
    prompt = build_prompt(ctx, "chat")
    params = SamplingParams(k=4, max_tokens=64, temperature=0.7, seed=0)
    engine.allow_empty = True
    try:
        before = engine.generate(prompt, params)
    finally:
        engine.allow_empty = False
    assert all(not g.text.strip() for g in before), [g.text for g in before]  # it does close at once
    after = engine.generate(prompt, params)
    assert all(g.text.strip() for g in after), [g.text for g in after]
    usable = [g for g in after if candidate_from(g, prompt, module, target) is not None]
    assert len(usable) >= 2, [g.text for g in after]
