"""Validates an OpenAPI document with openapi-spec-validator (an implementation independent of
the utoipa crate that writes ours), detecting its version from the document.

Usage: validate_openapi.py <document.json>. Prints "valid OpenAPI <version>" and exits 0, or
prints every error and exits 1. The e2e test `openapi.rs` runs it on the served document.
"""

import json
import sys

from openapi_spec_validator import validate


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        document = json.load(f)
    try:
        validate(document)
    # Schema violations raise OpenAPIValidationError; a dangling $ref raises the referencing
    # library's Unresolvable: both make the document invalid.
    except Exception as error:  # noqa: BLE001
        print(f"invalid ({type(error).__name__}): {error}")
        return 1
    print(f"valid OpenAPI {document.get('openapi')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
