#!/usr/bin/env python3
"""Validates report.json files against Volley's JSON Schema with the
`jsonschema` package (an independent implementation of JSON Schema).

usage: validate_report.py SCHEMA.json REPORT.json...

Prints one line per report ("ok PATH" or every error with its JSON path)
and exits 1 when any report is invalid, 2 when the schema itself is not a
valid JSON Schema.
"""

import json
import sys

import jsonschema


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        schema = json.load(fh)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        print(f"schema {argv[1]} is not a valid JSON Schema: {e.message}")
        return 2
    validator = cls(schema)
    bad = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
        errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
        if errors:
            bad += 1
            for e in errors:
                where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                print(f"invalid {path}: at {where}: {e.message}")
        else:
            print(f"ok {path} ({cls.__name__})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
