"""Benchmark suites with regression detection (`rbench bench`): suites as data (spec), the
benchmark kinds (measure), running a suite (run), the results file and its schema (results),
the statistical comparison (compare) and trends (history). See docs/benchmarks.md."""
