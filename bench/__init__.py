"""``python -m bench``: Loopgate's throughput and latency harness (not a test, not the product).

See bench/README.md for what is measured and how.
"""
