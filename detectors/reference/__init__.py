"""Versioned reference data that feature functions read, shipped beside the code.

A feature that needs master data (where a product may be sold, what role a location plays)
reads it from a JSON file in this folder rather than from the event or the entity state. The
file is part of the model's inputs, so the model card records it by SHA-256
(`ReferenceDataDigest`) and the stream refuses to score with a file whose digest differs: a
decision can always be replayed with the exact table that produced it.

Published files are never edited: a change is a new file with a new version number.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from attestcore.errors import ConfigError
from attestcore.schemas import Sha256Hex


class ReferenceDataDigest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Which reference file a model's features read: recorded in the model card."""

    name: str  # the file name under detectors/reference/
    format: str
    version: str
    sha256: Sha256Hex  # of the file's exact bytes: `sha256sum detectors/reference/<name>`


def check_reference_data(
    model_id: str,
    recorded: Sequence[ReferenceDataDigest],
    shipped: Sequence[ReferenceDataDigest],
) -> None:
    """Refuse to score with reference files other than those the model was trained with.

    `recorded` comes from the model card, `shipped` from the files the features read now.
    """
    current = {r.name: r for r in shipped}
    for expected in recorded:
        found = current.get(expected.name)
        if found is None or found.sha256 != expected.sha256:
            calculated = "missing" if found is None else f"sha256 {found.sha256}"
            raise ConfigError(
                f"model {model_id} was trained with reference data {expected.name} sha256"
                f" {expected.sha256}, but the shipped file is {calculated}: restore that file"
                " or retrain the model"
            )
