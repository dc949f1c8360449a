"""One detection worker of the scale-out figure (`bench.scaleout` starts one or two).

`python -m bench.scale_worker PARTITIONS SETTINGS_JSON` runs the decide worker of
`bench.stream_worker` (the fraud detector as `attestream detect` builds it) on a payments
topic of `PARTITIONS` partitions, its table and output topics as many, in the consumer group
`app_id`. Besides `first_batch` it stamps `assigned-N` whenever a rebalance leaves it N
partitions of the payments topic, so that the benchmark can start sending once every worker
of the group holds its share. It runs until it is sent SIGTERM.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import msgspec

from attestcore.schemas import Detector
from attestream.detection import fraud_spec, stream_model
from bench.stream_worker import Stamps, WorkerSettings, _Stamped, stream_config
from streams.app import create_app, tune_gc
from streams.metrics import DetectMetrics


def scale_app(s: WorkerSettings, partitions: int, stamps: Stamps) -> Any:
    scorer = stream_model(Path(s.models_dir), Detector.FRAUD, s.model_sha256)
    spec = fraud_spec(scorer, s.labels_topic)
    metrics = DetectMetrics()
    metrics.events_in = _Stamped(metrics.events_in, stamps, "first_batch", 1)
    config = dataclasses.replace(stream_config(s), partitions=partitions)
    app = create_app(config, {s.topic: spec}, metrics)

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        (assigned,) = args  # the partitions this worker now holds
        stamps.write(f"assigned-{sum(1 for tp in assigned if tp.topic == s.topic)}")

    app.on_partitions_assigned.connect(on_assigned)
    return app


def main(argv: list[str]) -> None:
    partitions, raw_settings = argv
    settings = msgspec.json.decode(raw_settings, type=WorkerSettings)
    app = scale_app(settings, int(partitions), Stamps(Path(settings.stamps)))
    tune_gc()  # as `attestream detect` does
    app.Worker(loglevel="INFO", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
