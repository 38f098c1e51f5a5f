; Every function definition, with its name and body.
(function_definition
  name: (identifier) @name
  body: (block) @body) @function
