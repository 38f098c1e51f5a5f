"""From model output to a spliced document: extracting bodies, splicing, LSP edits, normalising."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lsp_verify.syntax.splice import (
    StaleTargetError,
    body_edit,
    extract_body,
    lsp_position,
    normalise,
    parse_error,
    splice_body,
)
from lsp_verify.syntax.target import EditTarget
from lsp_verify.syntax.targets import find_stub_targets, target_at

PATH = Path("/project/stack.py")

DOCUMENT = '''\
from __future__ import annotations


class Stack:
    """A LIFO stack."""

    def __init__(self) -> None:
        self.items: list[int] = []

    def push(self, item: int) -> None:
        """Put item on top."""
        ...

    def peek(self) -> int: ...


def mean(values: list[float]) -> float:
    raise NotImplementedError


def describe(values: list[float]) -> str:
    """Summary line.

    More detail.
    """
'''


def stub(qualname: str, text: str = DOCUMENT) -> EditTarget:
    return next(target for target in find_stub_targets(text, PATH) if target.qualname == qualname)


def test_fenced_full_definition_with_prose_and_helper_imports() -> None:
    generated = (
        "Sure! Here's an implementation that handles empty lists:\n\n"
        "```python\n"
        "import statistics\n"
        "\n"
        "def _check(values):\n"
        "    return bool(values)\n"
        "\n"
        "def mean(values: list[float]) -> float:\n"
        '    """Arithmetic mean."""\n'
        "    if not values:\n"
        "        raise ValueError('mean of nothing')\n"
        "    return sum(values) / len(values)\n"
        "```\n\n"
        "This raises `ValueError` for an empty list.\n"
    )
    body = extract_body(generated, stub("mean"))
    assert body == (
        "    if not values:\n"
        "        raise ValueError('mean of nothing')\n"
        "    return sum(values) / len(values)"
    )


def test_a_docstring_with_a_fenced_example_does_not_hide_the_body() -> None:
    """The chat prompt's answer is pre-filled with ```python, the header and the docstring; humanize's
    docstrings hold their examples in a ```pycon block, whose fences split that code where no fence ends
    it: none of the 8 bodies the model wrote for naturalsize was extracted."""
    text = (
        "def size(value: int) -> str:\n"
        '    """Format a size.\n\n    Examples:\n        ```pycon\n        >>> size(3)\n        \'3 B\'\n\n'
        '        ```\n    """\n    ...\n'
    )
    target = stub("size", text)
    prefill = "```python\n" + text.removesuffix("    ...\n")
    assert extract_body(prefill + '    return f"{value} B"\n', target) == '    return f"{value} B"'


def test_method_inside_a_class_block_is_reindented_to_the_target() -> None:
    generated = (
        "```\n"
        "class Stack:\n"
        "  def push(self, item: int) -> None:\n"
        "    # keep order\n"
        "    self.items.append(item)\n"
        "```"
    )
    assert extract_body(generated, stub("Stack.push")) == (
        "        # keep order\n        self.items.append(item)"
    )


def test_method_alone_and_one_line_definition() -> None:
    assert extract_body("def peek(self): return self.items[-1]", stub("Stack.peek")) == (
        "        return self.items[-1]"
    )


def test_bare_body_lines_from_a_fill_in_the_middle_continuation() -> None:
    # The prompt ended with the indentation: the first line comes without it. The model ran on past the
    # function into the next definition, which is cut off.
    generated = (
        "total = 0.0\n    for v in values:\n        total += v\n    return total / len(values)\n"
        "\n\ndef other():\n    pass\n"
    )
    assert extract_body(generated, stub("mean")) == (
        "    total = 0.0\n    for v in values:\n        total += v\n    return total / len(values)"
    )


def test_repeated_docstring_in_a_bare_body_is_dropped() -> None:
    generated = '    """Summary line."""\n    return ", ".join(map(str, values))\n'
    assert extract_body(generated, stub("describe")) == '    return ", ".join(map(str, values))'


def test_multiline_string_contents_are_not_reindented() -> None:
    generated = 'def describe(values):\n  text = """a\n b"""\n  return text\n'
    assert extract_body(generated, stub("describe")) == '    text = """a\n b"""\n    return text'


@pytest.mark.parametrize(
    "generated",
    [
        "",
        "   \n",
        "pass",
        "def mean(values):\n    ...\n",
        "    raise NotImplementedError('todo')",
        "I'm sorry, I can't help with that.",
        "Done.",
        "```python\ndef helper(x):\n    return x\n```",
        "return (",
    ],
)
def test_unusable_output_gives_none(generated: str) -> None:
    assert extract_body(generated, stub("mean")) is None


@pytest.mark.parametrize("qualname", ["Stack.push", "Stack.peek", "mean", "describe"])
def test_splice_keeps_header_and_docstring_and_the_result_parses(qualname: str) -> None:
    target = stub(qualname)
    body = target.indent + "return None"
    new_text = splice_body(DOCUMENT, target, body)
    assert parse_error(new_text) is None
    assert target.header in new_text
    if target.docstring is not None:
        assert target.docstring + "\n" + body in new_text
    # Locating the spliced function again finds the new body in the same place.
    again = target_at(new_text, PATH, target.def_start_line)
    assert again.qualname == qualname and again.current_body == "return None"


def test_one_line_definition_moves_its_body_to_the_next_line() -> None:
    text = "def f(x: int) -> int: ...\n"
    (target,) = find_stub_targets(text, PATH)
    assert splice_body(text, target, "    y = x + 1\n    return y") == (
        "def f(x: int) -> int:\n    y = x + 1\n    return y\n"
    )


@pytest.mark.parametrize(
    "header", ['def g(x: int) -> int: "Twice x."; ', "def g(x: int) -> int:  'Twice' \"x.\" ;  "]
)
def test_a_one_line_definition_with_a_docstring_keeps_it_on_a_line_of_its_own(header: str) -> None:
    # `def g() -> int: "doc"; return 1`: the body went on its own line after `"doc";`, which does not parse
    # (the check of such a new function then fell back to a mypy run that, untrusted, used the project's
    # configuration).
    text = f"{header}return x + x\n"
    target = target_at(text, PATH, 0)
    spliced = splice_body(text, target, "    return 2 * x")
    ast.parse(spliced)
    docstring = header.split(":", 2)[2].strip().rstrip(";").strip()
    assert spliced == f"def g(x: int) -> int:\n    {docstring}\n    return 2 * x\n", spliced


def test_splice_into_changed_text_is_refused() -> None:
    target = stub("mean")
    with pytest.raises(StaleTargetError):
        splice_body(DOCUMENT + "\n# edited\n", target, "    return 0.0")


def test_body_edit_counts_utf16_columns_after_an_emoji() -> None:
    text = 'def f() -> str: s = "😀"; return s\n'
    target = target_at(text, PATH, 0)
    assert target.current_body == 's = "😀"; return s'
    start_line, start_col, end_line, end_col, new_text = body_edit(text, target, '    return "😀😀"')
    # The emoji is one Python character but two UTF-16 code units.
    assert (start_line, start_col) == (0, 15)
    assert (end_line, end_col) == (0, len('def f() -> str: s = "😀"; return s') + 1)
    assert new_text == '\n    return "😀😀"'
    lines = text.split("\n")
    applied = _apply_utf16_edit(lines, start_line, start_col, end_line, end_col, new_text)
    assert applied == splice_body(text, target, '    return "😀😀"')


def test_body_edit_covers_only_the_body_of_an_indented_stub() -> None:
    target = stub("mean")
    edit = body_edit(DOCUMENT, target, "    return 0.0")
    assert edit == (target.body_start_line, 4, target.body_end_line, 29, "return 0.0")


def _apply_utf16_edit(
    lines: list[str], start_line: int, start_col: int, end_line: int, end_col: int, new_text: str
) -> str:
    def offset(line: int, utf16_col: int) -> int:
        before = sum(len(text) + 1 for text in lines[:line])
        units = 0
        for index, char in enumerate(lines[line]):
            if units >= utf16_col:
                return before + index
            units += len(char.encode("utf-16-le")) // 2
        return before + len(lines[line])

    text = "\n".join(lines)
    return text[: offset(start_line, start_col)] + new_text + text[offset(end_line, end_col) :]


def test_lsp_position_converts_character_columns_to_utf16() -> None:
    text = "x = '😀é'\n"
    assert lsp_position(text, 0, 5) == (0, 5)  # before the emoji
    assert lsp_position(text, 0, 6) == (0, 7)  # after it: two UTF-16 units
    assert lsp_position(text, 0, 7) == (0, 8)
    assert lsp_position(text, 0, 0) == (0, 0)


def test_normalise_ignores_formatting_comments_and_docstrings() -> None:
    first = 'def f(x):\n    """Doc."""\n    # add one\n    return x+1\n'
    second = "def f(x):\n    return (x + 1)  # plus one\n"
    assert normalise(first) == normalise(second)
    assert normalise("    total = 0\n    return total\n") == normalise("total=0\nreturn total")


def test_normalise_tells_different_logic_apart() -> None:
    assert normalise("return x + 1") != normalise("return x - 1")
    assert normalise("return a or b") != normalise("return b or a")


def test_normalise_falls_back_for_code_that_does_not_parse() -> None:
    assert normalise("x = (1 +  # c\n") == normalise("x=(1+")
    assert normalise("x = (1 +") != normalise("x = (2 +")


def test_parse_error_names_the_line() -> None:
    assert parse_error(DOCUMENT) is None
    assert parse_error("x = 1\ndef f(:\n    pass\n") == "line 2: invalid syntax"
    assert parse_error("return 1\n") == "line 1: 'return' outside function"
    message = parse_error("def f():\nreturn 1\n")
    assert message is not None and message.startswith("line 2: expected an indented block")


def test_extracted_bodies_splice_into_documents_that_parse() -> None:
    target = stub("Stack.push")
    body = extract_body("self.items.append(item)", target)
    assert body is not None
    new_text = splice_body(DOCUMENT, target, body)
    assert parse_error(new_text) is None
    tree = ast.parse(new_text)
    stack = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    push = next(node for node in stack.body if isinstance(node, ast.FunctionDef) and node.name == "push")
    assert ast.get_docstring(push) == "Put item on top."
    assert ast.unparse(push.body[1]) == "self.items.append(item)"


def test_splice_keeps_windows_line_endings() -> None:
    text = "def f(x: int) -> int: ...\r\n\r\ndef g() -> None:\r\n    pass\r\n"
    first, second = find_stub_targets(text, PATH)
    assert splice_body(text, first, "    y = x\n    return y").startswith(
        "def f(x: int) -> int:\r\n    y = x\r\n    return y\r\n"
    )
    assert second.current_body == "pass"
    new_text = splice_body(text, second, "    print()\n    return None")
    assert new_text.endswith("def g() -> None:\r\n    print()\r\n    return None\r\n")
    assert parse_error(new_text) is None
