"""Scans through the stream's batch decider give the offline replay's vectors, bit for bit.

The simulated scans include every counterfeit scenario and every kind of honest noise (late
uploads arriving out of event time, duplicate reads, missed reads), in arrival order, in
batches of the stream's kind; the state mapping plays the faust Table and goes through JSON
between batches as a changelog would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from attestcore.errors import ConfigError
from attestcore.schemas import OUTCOMES, Detector, SupplyChainEvent, encode
from attestream.detection import _supply, authenticity_scorer
from detectors.dataset import supply_dataset
from detectors.registry import LoadedModel, active_sha256, card_path
from detectors.scoring import Scorer
from detectors.simulate_supply import LabelledScan
from detectors.supply_calibration import model_calibration
from streams.intake import EventParser, RecordRef
from streams.pipeline import DetectorSpec, decide_batch


def records(scans: list[LabelledScan]) -> list[RecordRef]:
    return [
        RecordRef("supply", 0, offset, s.event.epc.encode(), encode(s.event))
        for offset, s in enumerate(scans)
    ]


def test_stream_vectors_equal_the_offline_replay(
    scans: list[LabelledScan], authenticity_model: LoadedModel
) -> None:
    spec = DetectorSpec(
        Detector.AUTHENTICITY,
        EventParser(SupplyChainEvent, "epc"),
        _supply,
        Scorer(authenticity_model),
    )
    state: dict[str, dict[str, object]] = {}
    online: list[list[float]] = []
    outcomes: list[str] = []
    batch = records(scans)
    for start in range(0, len(batch), 500):
        result = decide_batch(spec, batch[start : start + 500], state)
        assert not result.rejections
        online.extend(list(d.features.values()) for _, _, d in result.decisions)
        outcomes.extend(d.outcome for _, _, d in result.decisions)
        state = json.loads(json.dumps(state))  # the changelog round trip
    offline = supply_dataset(scans).X
    np.testing.assert_array_equal(np.asarray(online, dtype=np.float32), offline)
    assert set(outcomes) <= set(OUTCOMES[Detector.AUTHENTICITY]) and "counterfeit" in outcomes


def test_the_stream_featurizes_with_the_calibration_of_its_model(
    scans: list[LabelledScan], models_dir: Path
) -> None:
    """The unit model was trained with the calibration fitted on its own scans: the stream's
    vectors are the offline replay's with that calibration, not with the shipped one."""
    scorer = authenticity_scorer(models_dir)
    spec = DetectorSpec(
        Detector.AUTHENTICITY, EventParser(SupplyChainEvent, "epc"), _supply, scorer
    )
    state: dict[str, dict[str, object]] = {}
    online: list[list[float]] = []
    batch = records(scans)
    for start in range(0, len(batch), 500):
        result = decide_batch(spec, batch[start : start + 500], state)
        online.extend(list(d.features.values()) for _, _, d in result.decisions)
        state = json.loads(json.dumps(state))
    own = supply_dataset(scans, model_calibration(scorer.model)).X
    np.testing.assert_array_equal(np.asarray(online, dtype=np.float32), own)
    assert not np.array_equal(own, supply_dataset(scans).X)


def test_the_stream_refuses_a_model_with_another_reference_table(
    models_dir: Path, tmp_path: Path
) -> None:
    assert authenticity_scorer(models_dir).model_sha256
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    path = card_path(copy, "authenticity", active_sha256(copy, "authenticity") or "")
    card = json.loads(path.read_text())
    card["reference_data"][0]["sha256"] = "1" * 64
    path.write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="trained with reference data supply-chain-v1.json"):
        authenticity_scorer(copy)
