; Module-level lines a prompt needs to make sense of a function: imports, short constants and type aliases,
; and `if TYPE_CHECKING:` blocks (which hold imports used only in annotations).
(module (import_statement) @import)
(module (import_from_statement) @import)
(module (future_import_statement) @import)
(module (expression_statement (assignment left: (identifier))) @assignment)
(module (type_alias_statement) @assignment)
(module
  (if_statement
    condition: [
      (identifier) @condition
      (attribute attribute: (identifier) @condition)
    ]) @type_checking
  (#eq? @condition "TYPE_CHECKING"))
