"""Benchmarks: scripts that print figures. Speed is measured here, never in timed tests."""
