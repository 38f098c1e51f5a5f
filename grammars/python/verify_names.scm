; Every identifier (names, attribute names, keyword-argument names): what a test function mentions.
(identifier) @name
