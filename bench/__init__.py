"""Runnable benchmarks (make bench)."""
