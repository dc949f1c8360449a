"""Every published JSON Schema, generated from the Structs that define the formats.

The wire messages (attestcore/schemas.py), the evidence an investigator is handed (proof files
and the anchor proofs inside them: forensics/proofs.py, anchoring/proofs.py; case bundles:
forensics/case_bundle.py) and the verifier's
trusted state (forensics/trusted_state.py) are each one msgspec Struct. `make schemas` runs
`write_json_schemas`, which writes all of their schemas to docs/schemas/, the one place they
are published for implementers in any language; a test checks that the published files match
this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from anchoring.proofs import AnchorProofFile
from attestcore.schemas import SCHEMAS as WIRE_SCHEMAS
from forensics.case_bundle import CaseBundleFile
from forensics.proofs import ProofFile
from forensics.trusted_state import TrustedState

PUBLISHED: dict[str, type[msgspec.Struct]] = {
    **WIRE_SCHEMAS,
    "proof-file": ProofFile,
    "anchor-proof": AnchorProofFile,
    "case-bundle": CaseBundleFile,
    "verifier-state": TrustedState,
}

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one published format."""
    schema = msgspec.json.schema(PUBLISHED[name])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://attestream.dev/schemas/{name}.json"
    return schema


def render_json_schema(name: str) -> str:
    return json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n"


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every published schema to `directory` (`make schemas`)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PUBLISHED:
        path = directory / f"{name}.json"
        path.write_text(render_json_schema(name), encoding="utf-8")
        written.append(path)
    return written
