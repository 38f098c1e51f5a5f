"""A tiny package whose stub functions ``lsp-verify fix`` can fill in."""
