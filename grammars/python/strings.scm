; String literals: lines inside a multi-line string are kept byte for byte when a body is re-indented.
(string) @string
