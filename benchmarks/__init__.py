"""Reproducible benchmarks (kept out of CI)."""
