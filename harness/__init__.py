"""Starts syncguard's moving parts on one machine for the demo, the benchmarks and the tests.

Not part of the installed product: nothing in `shared`, `workers` or `api` imports it.
"""
