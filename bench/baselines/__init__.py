"""Baseline servers that bench/serve_bench.py measures ours against (same model, payloads, workers)."""
