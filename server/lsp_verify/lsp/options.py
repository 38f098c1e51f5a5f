"""The server's effective :class:`~lsp_verify.config.Settings`, layered from its sources.

Lowest precedence first: defaults, ``[tool.lsp-verify]`` in the workspace's pyproject.toml,
initializationOptions, then the client's ``lspVerify`` section of workspace/configuration (in an untrusted
workspace, without the fields a repository may not set: a client may answer it from a file in the
repository).

Trust is the exception: whether workspace code may run is decided by the editor alone, through
``initializationOptions.trusted``. A repository cannot trust itself (pyproject.toml, or a workspace-level
settings file answering workspace/configuration, both live in the repository). That decision is read
first, because it decides how much of ``[tool.lsp-verify]`` counts: in an untrusted workspace the repository
cannot loosen anything (see ``config.UNTRUSTED_PROJECT_IGNORES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Settings, project_settings, untrusted_split

SECTION = "lspVerify"
"""The workspace/configuration section (and the key under workspace/didChangeConfiguration's settings)."""


def effective_settings(
    root: Path | None, init_options: Mapping[str, Any] | None, editor_config: Mapping[str, Any] | None
) -> Settings:
    """Settings for ``root``; every invalid or ignored value is described in ``problems``."""
    trusted = init_options is not None and init_options.get("trusted") is True  # as Settings.updated reads it
    settings = project_settings(root, trusted=trusted) if root is not None else Settings()
    if settings.trusted:
        settings.trusted = False
        settings.problems.append(
            f"{root / 'pyproject.toml' if root else 'pyproject.toml'}: 'trusted' is ignored there — only the "
            'editor can trust a workspace (initializationOptions "trusted": true)'
        )
    if init_options:
        settings = settings.updated(init_options, "initializationOptions")
    if editor_config:
        values = dict(editor_config)
        if "trusted" in values:
            values.pop("trusted")
            settings.problems.append(
                f"workspace/configuration {SECTION}.trusted is ignored — trust comes from "
                'initializationOptions "trusted"'
            )
        if not trusted:
            # The answer may come from a settings file in the repository (a client that reads one, as
            # neoconf's .neoconf.json): what could run code or send it elsewhere comes from
            # initializationOptions alone (VS Code's extension sends every setting there too).
            values, ignored = untrusted_split(values)
            if ignored:
                settings.problems.append(
                    f"workspace/configuration {SECTION}: ignored because the workspace is not trusted "
                    f"({ignored}): set these in initializationOptions, or trust the workspace"
                )
        settings = settings.updated(values, f"workspace/configuration {SECTION}")
    return settings
