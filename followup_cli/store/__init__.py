"""All SQL lives in this package: one module per table or concern, verb-named functions
that take a Connection and plain values. The service layer composes them; nothing above
it writes SQL."""
