; Statements that stand in for a body that is still to be written.
; A function is a stub when every statement after its docstring is one of these.
(expression_statement (ellipsis)) @stub
(pass_statement) @stub
(raise_statement
  (identifier) @exception
  (#eq? @exception "NotImplementedError")) @stub
(raise_statement
  (call
    function: (identifier) @exception
    arguments: (argument_list))
  (#eq? @exception "NotImplementedError")) @stub
