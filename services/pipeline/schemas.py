"""Message schemas (JSON Schema 2020-12), one file per type and version under schemas/."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

from ..common.errors import BadMessage


@lru_cache(maxsize=32)
def _validator(schemas_dir: Path, schema: str) -> Draft202012Validator:
    path = Path(schemas_dir) / f"{schema}.json"
    if not path.is_file():
        raise BadMessage(f"unknown message schema {schema!r}", code="unknown-schema")
    doc = json.loads(path.read_text())
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc)


def validate(schemas_dir: Path, schema: str, payload: object) -> None:
    """Raise BadMessage naming the first problem when `payload` breaks `schema`."""
    errors = sorted(_validator(Path(schemas_dir), schema).iter_errors(payload), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise BadMessage(f"{schema}: {where}: {first.message}", code="schema-invalid")
