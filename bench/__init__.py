"""Benchmarks of the tracker.

``make bench`` runs :mod:`bench.hot_path`: the parsers' hot path (detail
updates and heartbeats) through a real functions-framework server on the
Firestore emulator, next to the floor of bare Firestore writes and
transactions, plus the Firestore reads and writes each tracker call costs.
Results are printed as Markdown and written to ``bench/results/`` (gitignored).
"""
