"""Versioned reference data that feature functions read, shipped beside the code.

A feature that needs master data (where a product may be sold, what role a location plays)
reads it from a JSON file in this folder rather than from the event or the entity state. The
file is part of the model's inputs, so the model card records it by SHA-256
(`ReferenceDataDigest`) and the stream refuses to score with a file whose digest differs: a
decision can always be replayed with the exact table that produced it.

Published files are never edited: a change is a new file with a new version number.
"""

from __future__ import annotations

import msgspec

from streams.schemas import Sha256Hex


class ReferenceDataDigest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Which reference file a model's features read: recorded in the model card."""

    name: str  # the file name under detectors/reference/
    format: str
    version: str
    sha256: Sha256Hex  # of the file's exact bytes: `sha256sum detectors/reference/<name>`
