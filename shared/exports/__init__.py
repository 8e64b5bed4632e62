"""Exports: the producer that enqueues them, the applier that applies them, and their bookkeeping.

Bookkeeping means failed exports (the dead-letter store), the post ledger that `post --wait` reads,
the crash counter that stops a poison message, and redelivery of what the broker lost.
"""
