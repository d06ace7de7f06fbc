#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the reference parser
(prometheus_client) and prints the samples as JSON:
[{"name": ..., "labels": {...}, "value": ...}, ...]. Fails on invalid text."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append({"name": s.name, "labels": dict(s.labels), "value": s.value, "type": family.type})
print(json.dumps(samples))
