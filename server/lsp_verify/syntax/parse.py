"""The Python tree-sitter language, a parser, and the query files from ``grammars/python``.

The .scm files live at the repository root (``grammars/python``). A wheel carries them as
``lsp_verify/grammars/python`` (see pyproject.toml's package-dir mapping); an editable install or a source
checkout finds them at the root. Both are looked up here, and nowhere else.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import tree_sitter
import tree_sitter_python

LANGUAGE = tree_sitter.Language(tree_sitter_python.language())


def grammar_dir() -> Path:
    """The directory holding the Python query files."""
    try:
        packaged = Path(str(resources.files("lsp_verify.grammars") / "python"))
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    source_tree = Path(__file__).resolve().parents[3] / "grammars" / "python"
    if source_tree.is_dir():
        return source_tree
    raise FileNotFoundError(
        "tree-sitter query files not found: expected lsp_verify/grammars/python in the installed package "
        f"or {source_tree}; reinstall lsp-verify"
    )


@functools.cache
def load_query(name: str) -> tree_sitter.Query:
    """The query ``grammars/python/<name>.scm``, compiled once per process."""
    query: tree_sitter.Query = tree_sitter.Query(
        LANGUAGE, (grammar_dir() / f"{name}.scm").read_text(encoding="utf-8")
    )
    return query


def parse(source: str | bytes) -> tree_sitter.Tree:
    data = source.encode("utf-8") if isinstance(source, str) else source
    return tree_sitter.Parser(LANGUAGE).parse(data)


def captures(query_name: str, node: tree_sitter.Node) -> dict[str, list[tree_sitter.Node]]:
    """Run a named query over ``node``; capture name -> nodes in document order."""
    found = tree_sitter.QueryCursor(load_query(query_name)).captures(node)
    return {name: sorted(nodes, key=lambda n: n.start_byte) for name, nodes in found.items()}
