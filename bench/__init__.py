"""Benchmarks of the tracker: ``make bench``, or ``python -m bench.<name>``; results in ``bench/results/``."""
