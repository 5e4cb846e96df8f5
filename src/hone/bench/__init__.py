"""Benchmarks: checked suites, ground-truth accuracy with intervals, win/tie/loss against a reference."""
