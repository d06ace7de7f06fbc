#!/usr/bin/env python3
"""Reads Volley interval logs (latency.hlog, workers.hlog) with an independent
HdrHistogram implementation (the `hdrhistogram` package from PyPI, module
`hdrh`) and merges every histogram line of each file itself. Prints, as JSON,
per file: the number of lines, the tags seen, the total count and the merged
percentiles in microseconds. Used by integration-tests/tests/hlog_python.rs.

Usage: check_hlog.py FILE..."""
import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


def read(path):
    reader = HistogramLogReader(path, HdrHistogram(1, 3_600_000_000, 3))
    total = HdrHistogram(1, 3_600_000_000, 3)
    lines = 0
    tags = set()
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        total.add(h)
        lines += 1
        tags.add(h.get_tag())
    return {
        "lines": lines,
        "tags": sorted(t for t in tags if t is not None),
        "untagged": None in tags,
        "count": total.get_total_count(),
        "p50_us": total.get_value_at_percentile(50),
        "p90_us": total.get_value_at_percentile(90),
        "p99_us": total.get_value_at_percentile(99),
        "p999_us": total.get_value_at_percentile(99.9),
        "max_us": total.get_max_value(),
    }


def main(paths):
    print(json.dumps({p: read(p) for p in paths}))


if __name__ == "__main__":
    main(sys.argv[1:])
