"""The benchmark: a load generator, baseline servers and the runner (issue 6).

Nothing here is part of the product; see docs/PERFORMANCE.md.
"""
