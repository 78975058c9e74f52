"""One timing process of the harness: ``python -m oxinet.benchmarks._worker CASE LIB THREADS MIN_TIME``
prints one JSON line with the median seconds per call (or why there is none)."""

import json
import sys

from oxinet.benchmarks.harness import worker

if __name__ == "__main__":
    _, name, lib, threads, min_time = sys.argv
    print(json.dumps(worker(name, lib, int(threads), float(min_time))))
