"""Benchmarks of the tracker.

``make bench`` runs :mod:`bench.hot_path`: the parsers' hot path (detail
updates and heartbeats) through a real functions-framework server on the
Firestore emulator, next to the floor of bare Firestore writes and
transactions, plus the Firestore reads and writes each tracker call costs;
then :mod:`bench.next_job` (``make bench-next``): ``POST /v2/job/next`` through
HTTP and what one call costs; then :mod:`bench.maintenance`
(``make bench-maintenance``): snapshot export and import, expiry and the
status page at 1,000 to 100,000 jobs, time and peak memory.
Results are printed as Markdown and written to ``bench/results/`` (gitignored).
"""
