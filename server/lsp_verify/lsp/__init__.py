"""The language server: capabilities, handlers, progress, cancellation and versioned edits.

A thin shell over :class:`lsp_verify.pipeline.Pipeline`: handlers get the document, hand the work to the one
pipeline worker thread and convert the result. ``server.main`` is what ``lsp-verify serve`` runs.
"""
