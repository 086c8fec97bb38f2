"""JSON Schema validation (Draft 2020-12): jsonschema-rs answers "valid?" in about a microsecond, and jsonschema
explains why not (its messages and paths are the ones users know). Validators are cached per schema.

    v = validator_for({"type": "object", "required": ["queue"]})
    v.is_valid({"queue": "billing"})        # True
    v.first_error({})                        # ("(root)", "'queue' is a required property")
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


class SchemaValidator:
    """One schema's validator; build it with `validator_for` (which checks the schema and caches)."""

    def __init__(self, schema: dict) -> None:
        import jsonschema

        self.schema = schema
        self._slow = jsonschema.Draft202012Validator(schema)
        try:
            import jsonschema_rs

            self._fast = jsonschema_rs.Draft202012Validator(schema)
        except Exception:
            self._fast = None

    def is_valid(self, obj: Any) -> bool:
        if self._fast is not None:
            try:
                return self._fast.is_valid(obj)
            except Exception:
                pass
        return self._slow.is_valid(obj)

    def first_error(self, obj: Any) -> tuple[str, str] | None:
        """(path, message) of the first error in document order, or None when `obj` is valid."""
        if self.is_valid(obj):
            return None
        errors = sorted(self._slow.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
        if not errors:
            return None
        return ".".join(map(str, errors[0].absolute_path)) or "(root)", errors[0].message


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a valid Draft 2020-12 JSON Schema, or None when it is."""
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


def validator_for(schema: dict) -> SchemaValidator:
    """A cached validator for a (valid) schema."""
    return _cached(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=256)
def _cached(schema_json: str) -> SchemaValidator:
    return SchemaValidator(json.loads(schema_json))
