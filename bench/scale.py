"""Scale benchmark: the status page through HTTP, an expiry pass and a snapshot export at N jobs.

Measured by :mod:`bench.maintenance`, on its loading, export and expiry."""

from bench.maintenance import main

if __name__ == "__main__":
    raise SystemExit(main(scale=True, doc=__doc__))
