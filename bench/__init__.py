"""The benchmark: a load generator, baseline servers and the runner.

Nothing here is part of the product; see docs/PERFORMANCE.md.
"""
