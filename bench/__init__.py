"""Benchmarks run by ``rongguan bench NAME``; each returns a dict of figures and ratios."""
