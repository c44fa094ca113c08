"""Benchmarks: `python -m emcom.bench {train,topsim,tfds} [options]`, one JSON object per line."""
