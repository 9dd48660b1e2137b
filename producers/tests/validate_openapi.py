"""Checks the ingest's OpenAPI document (run by producers/tests/openapi.rs).

Reads {"document": <OpenAPI>, "cases": [{"schema", "label", "data", "valid"}]} on stdin:
validates the document with openapi-spec-validator (OpenAPI 3.1), then validates each case's
data against `#/components/schemas/<schema>` (JSON Schema 2020-12, formats checked) and
checks the verdict is the expected one. Exits 1 listing every mismatch.
"""

import json
import sys

from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate


def main() -> int:
    payload = json.load(sys.stdin)
    document = payload["document"]
    validate(document)  # raises OpenAPIValidationError with the path of the problem

    failures = []
    for case in payload["cases"]:
        schema = {
            "$ref": "#/components/schemas/" + case["schema"],
            "components": document["components"],
        }
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        errors = list(validator.iter_errors(case["data"]))
        if case["valid"] and errors:
            reasons = "; ".join(
                "/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors[:3]
            )
            failures.append(f"{case['label']}: rejected by {case['schema']}: {reasons}")
        elif not case["valid"] and not errors:
            failures.append(f"{case['label']}: accepted by {case['schema']}, should not be")
    for failure in failures:
        print(failure)
    print(f"{len(payload['cases'])} cases, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
