"""Which model each detector scores with, and rolling a new one out without a restart.

A detector's model is either pinned in the settings (`ATTESTREAM_FRAUD_MODEL`,
`ATTESTREAM_AUTHENTICITY_MODEL`: a sha256, a model id or an unambiguous prefix) or, by
default, the one the registry names active (`attestream models activate`). A pinned model is
never replaced; an active one is followed:

1. Every `ATTESTREAM_DETECT_MODEL_POLL_S` seconds the worker re-reads the registry's active
   digest for the detector (`ModelWatch.poll`, run off the event loop in a thread).
2. When it names another model, that model is loaded and verified exactly as at start-up
   (its artifact re-hashed against its card, its features those this version computes, its
   reference data the shipped files), still off the event loop.
3. The stream swaps it in between two micro-batches: `decide_batch` reads the detector's
   scorer once per batch and never awaits, so a batch is decided by one model and every
   decision names the digest of the model that made it. No event is dropped or decided
   twice: the consumer never stops.
4. A model that fails verification is refused once (logged, counted), and the current model
   keeps scoring until the registry names another.

docs/operations.md, "Rolling out a model", has the procedure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from attestcore.errors import AttestreamError, ConfigError
from attestcore.schemas import Detector
from detectors.registry import active_sha256, read_registry, resolve_model
from streams.pipeline import BatchScorer

log = logging.getLogger("attestream.rollout")

ModelLoader = Callable[[Path, Detector, str], BatchScorer]
"""Loads and verifies the model `sha256` of a detector for the stream (raises if unfit)."""


class ModelWatch:
    """The model one detector scores with, and the next one when the registry names it."""

    def __init__(
        self, models_dir: Path, detector: Detector, pinned: str, load: ModelLoader
    ) -> None:
        self.models_dir = models_dir
        self.detector = detector
        self.pinned = pinned.strip()
        self._load = load
        self._lock = threading.Lock()  # one poll at a time, whatever the executor does
        self.current: str | None = None
        self.refused: dict[str, str] = {}
        """Activations (digest and time) that failed verification, with the reason."""

    @property
    def follows_registry(self) -> bool:
        return not self.pinned

    def start(self) -> BatchScorer:
        """The model to start with: the pinned one, else the registry's active one."""
        if self.pinned:
            sha256 = resolve_model(self.models_dir, self.detector, self.pinned)
        else:
            found = active_sha256(self.models_dir, self.detector)
            if found is None:
                name = self.detector.value
                raise ConfigError(
                    f"no active {name} model in {self.models_dir}: run `attestream train {name}`"
                )
            sha256 = found
        scorer = self._load(self.models_dir, self.detector, sha256)
        self.current = sha256
        return scorer

    def poll(self) -> BatchScorer | None:
        """Steps 1 and 2: the newly active model, loaded and verified, or None when nothing
        changed. Raises the verification error the first time a new digest is refused."""
        if self.pinned:
            return None
        with self._lock:
            entry = read_registry(self.models_dir).get("active", {}).get(self.detector.value)
            if entry is None or entry["model_sha256"] == self.current:
                return None
            sha256 = str(entry["model_sha256"])
            # Activating a refused model again (once it is repaired) is a new attempt.
            attempt = f"{sha256} activated at {entry.get('activated_at')}"
            if attempt in self.refused:
                return None
            try:
                scorer = self._load(self.models_dir, self.detector, sha256)
            except AttestreamError as exc:
                self.refused[attempt] = exc.diagnostics()
                raise
            self.current = sha256
            return scorer
