; What a test refers to: every identifier (names, attribute names, keyword names) and every import.
(identifier) @reference
(import_statement) @import
(import_from_statement) @import
