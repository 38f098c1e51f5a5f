"""``python -m lsp_verify``: the same command line as the ``lsp-verify`` script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
