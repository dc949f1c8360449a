"""The model API in one place: train, store, activate, load verified, ensure for the demo.

`detectors.training` trains and `detectors.registry` stores and verifies; callers outside
`detectors/` (the stream wiring, the demo, the forensic tool) import from here.
"""

from __future__ import annotations

from detectors.registry import (
    LoadedModel,
    ModelCard,
    ModelDigestMismatchError,
    activate_model,
    active_sha256,
    load_active,
    load_model,
    publish,
    read_card,
)
from detectors.training import (
    DEFAULT_PARAMS,
    DEFAULT_POLICY,
    AlertPolicy,
    TrainedModel,
    ensure_models,
    train,
    train_dataset,
    train_detector,
)

__all__ = [
    "DEFAULT_PARAMS",
    "DEFAULT_POLICY",
    "AlertPolicy",
    "LoadedModel",
    "ModelCard",
    "ModelDigestMismatchError",
    "TrainedModel",
    "activate_model",
    "active_sha256",
    "ensure_models",
    "load_active",
    "load_model",
    "publish",
    "read_card",
    "train",
    "train_dataset",
    "train_detector",
]
