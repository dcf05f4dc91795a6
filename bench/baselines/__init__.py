"""Baseline servers for the benchmark: the project's own sans-IO auction
machine behind asyncio streams, uvloop, and a thread per connection."""
