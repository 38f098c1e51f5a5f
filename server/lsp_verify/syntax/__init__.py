"""tree-sitter parsing: finding edit targets, splicing candidates, normalising them for de-duplication."""
