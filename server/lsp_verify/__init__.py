"""lsp-verify: a language server that only shows code suggestions it has checked."""

__version__ = "0.1.0"
