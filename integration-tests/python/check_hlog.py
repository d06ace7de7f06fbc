#!/usr/bin/env python3
"""Reads a Volley latency.hlog with an independent HdrHistogram implementation
(the `hdrhistogram` package from PyPI, module `hdrh`) and prints, as JSON, the
number of intervals, the total count and the merged percentiles in
microseconds. Used by integration-tests/tests/hlog_python.rs."""
import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


def main(path):
    reader = HistogramLogReader(path, HdrHistogram(1, 3_600_000_000, 3))
    total = HdrHistogram(1, 3_600_000_000, 3)
    intervals = 0
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        total.add(h)
        intervals += 1
    out = {
        "intervals": intervals,
        "count": total.get_total_count(),
        "p50_us": total.get_value_at_percentile(50),
        "p99_us": total.get_value_at_percentile(99),
        "max_us": total.get_max_value(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
