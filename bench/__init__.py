"""Benchmarks: `python -m bench.<name>`; results go in BENCHMARKS.md."""
