"""One module per scenario of issue 13 (and issue 9's measurements). Each exposes
`run(ctx)`, which appends rows to ctx and raises BenchFailure when a run is wrong."""
