#!/usr/bin/env python3
"""Checks a `--junit` file with two independent consumers and prints what
it found as one JSON object on stdout:

1. `xmlschema` validates it against a published JUnit XSD (the Jenkins
   xUnit plugin's junit-10.xsd, fetched into tests/schemas/ by test.sh);
2. `junitparser` parses it the way CI reporters do: its suites, test
   cases, their results and the suites' properties.

usage: check_junit.py XSD JUNIT.xml

Exit 1 when the file does not validate.
"""

import json
import sys

import junitparser
import xmlschema


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    xsd, path = argv[1], argv[2]
    schema = xmlschema.XMLSchema(xsd)
    errors = [str(e.reason or e) for e in schema.iter_errors(path)]
    if errors:
        print(json.dumps({"valid": False, "errors": errors}))
        return 1
    xml = junitparser.JUnitXml.fromfile(path)
    out = {
        "valid": True,
        "root": type(xml).__name__,
        # As the root element's attributes say.
        "tests": xml.tests,
        "failures": xml.failures,
        "errors": xml.errors,
        "suites": [],
    }
    for suite in xml:
        cases = []
        for case in suite:
            kinds = [type(r).__name__ for r in case.result]
            cases.append(
                {
                    "name": case.name,
                    "classname": case.classname,
                    "results": kinds,
                    "messages": [r.message for r in case.result],
                    "system_out": case.system_out,
                }
            )
        out["suites"].append(
            {
                "name": suite.name,
                "tests": suite.tests,
                "failures": suite.failures,
                "errors": suite.errors,
                "skipped": suite.skipped,
                "properties": {p.name: p.value for p in suite.properties()},
                "cases": cases,
            }
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
