"""STAC validation offline: pystac's JSON-schema validator over the schemas vendored in
tests/data/stac-schemas, failing where it would go online."""

from __future__ import annotations

import json

from pystac.validation import JsonSchemaSTACValidator

from .paths import STAC_SCHEMAS


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator with the vendored schemas, and no network."""

    def __init__(self) -> None:
        super().__init__()
        for path in STAC_SCHEMAS.glob("*.json"):
            schema = json.loads(path.read_text())
            self.schema_cache[schema["$id"].rstrip("#")] = schema
        self.used: set[str] = set()

    def _get_schema(self, schema_uri: str) -> dict:
        if schema_uri not in self.schema_cache:
            raise AssertionError(f"{schema_uri} is not vendored: validation would go online")
        self.used.add(schema_uri)
        return self.schema_cache[schema_uri]
