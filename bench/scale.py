"""Scale benchmark: the status page through HTTP, an expiry pass and a snapshot export at N jobs.

Measured by :mod:`bench.maintenance`, on its loading, export and expiry."""

import sys

from bench.maintenance import main

if __name__ == "__main__":
    sys.exit(main(scale=True, doc=__doc__))
