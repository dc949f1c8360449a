"""The end-to-end demo: events in, decisions logged, anchored and verified.

Steps: start the local stack; train models if none are active; start `detect`, `ledger run`
and `anchor run` as background processes; publish simulated payments (with their late labels)
and supply-chain scans (plus a few malformed records); wait until every valid event has a
logged decision and the latest checkpoints are anchored; read the decisions and dead-letter
topics back until every record published to the input topics has its outcome; verify the
whole log; print a summary. The demo passes only if the log verifies, the logged decisions
equal the valid events produced, and every consumed input record has exactly one decision or
one dead letter (`consumed N = decided D + dead-lettered L`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchoring.rpc import connect
from anchoring.store import AnchoredStore
from attestcore import processes
from attestcore.errors import AttestreamError
from attestcore.ports import unused_port
from attestcore.schemas import Detector
from attestcore.waiting import WaitTimeout, poll_until, wait_until
from attestream.accounting import Accounting, account, end_offsets
from attestream.settings import Settings, load_settings
from attestream.simulation import PublishSummary, publish, publish_payments
from attestream.wiring import ensure_local_ledger_key, open_store, trusted_verifiers
from detectors.labelled import GroundTruth, ground_truth
from detectors.model import active_sha256, ensure_models
from detectors.simulate_payments import simulate_payments
from detectors.simulate_supply import simulate_supply
from forensics.verify import Report, verify_ledger
from forensics.verify_tail import TailCheck
from ledger.archive_store import ArchiveStore
from ledger.topic_records import KafkaRederiver
from streams.producer import EventProducer
from streams.topics import ensure_topics

# Everything in the demo is local; five minutes covers a slow shared CI machine with room.
DEFAULT_WAIT_S = 300.0
POLL_S = 1.0
# Anchor often in the demo so it finishes quickly; production default is in settings.
DEMO_ANCHOR_INTERVAL_S = 2.0
STOP_GRACE_S = 20.0


@dataclass
class Background:
    """The long-running commands the demo starts, stopped by pid when it ends."""

    logs: Path
    procs: dict[str, processes.Child] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "attestream.cli", *args]
        self.procs[name] = processes.start(command, log=self.logs / f"demo-{name}.log", env=env)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"demo-{name}.log").read_text(errors="replace")[-2000:]
                raise DemoError(f"`attestream {name}` exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        processes.stop_all(list(self.procs.values()), STOP_GRACE_S)


class DemoError(AttestreamError):
    exit_code = 1


@dataclass
class DemoResult:
    run_id: str
    published: list[PublishSummary]
    logged: int
    outcomes: dict[str, dict[str, int]]
    quality: dict[str, dict[str, float]]
    report: Report
    anchors: list[dict[str, Any]]
    accounting: Accounting
    seconds: float
    models: dict[str, str] = field(default_factory=dict)
    """Detector -> "trained <model id>" or "reused <model id>"."""

    @property
    def dead_letters(self) -> int:
        return self.accounting.dead_lettered

    @property
    def valid_events(self) -> int:
        return sum(p.valid for p in self.published)

    @property
    def malformed(self) -> int:
        return sum(p.malformed for p in self.published)

    @property
    def ok(self) -> bool:
        """The log verifies, every valid event has one logged decision, every malformed
        record one dead letter, and no consumed record is without its one outcome."""
        return (
            self.report.ok
            and self.logged == self.valid_events
            and self.dead_letters == self.malformed
            and self.accounting.holds
        )


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ATTESTREAM_HOME": str(settings.home.resolve()),
            "ATTESTREAM_DETECT_METRICS_PORT": str(unused_port()),
            "ATTESTREAM_LEDGER_METRICS_PORT": str(unused_port()),
            "ATTESTREAM_ANCHOR_METRICS_PORT": str(unused_port()),
        }
    )
    return env


def run_demo(
    settings: Settings,
    transactions: int,
    scans: int,
    malformed: int,
    seed: int,
    wait_s: float = DEFAULT_WAIT_S,
    say: Callable[[str], None] = print,
) -> DemoResult:
    started = time.monotonic()
    run_id = f"demo{int(time.time())}"
    models = _models(settings, say)
    created = ensure_local_ledger_key(settings)  # `ledger run` never creates one itself
    if created is not None:
        say(f"created the ledger signing key {created} (never overwritten)")
    bootstrap = settings.require_kafka()
    ensure_topics(bootstrap, settings.all_topics(), settings.topic_partitions)
    inputs = [settings.topic_transactions, settings.topic_supply_chain]
    since = {topic: end_offsets(bootstrap, topic) for topic in inputs}
    store = open_store(settings, create=True)
    background = Background(settings.home / "logs")
    env = child_env(settings)
    try:
        say("starting detect, ledger run and anchor run ...")
        background.start("detect", ["detect"], env)
        background.start("ledger", ["ledger", "run"], env)
        background.start(
            "anchor", ["anchor", "run", "--interval", str(DEMO_ANCHOR_INTERVAL_S)], env
        )
        payments = simulate_payments(count=transactions, seed=seed, run_id=run_id)
        scans_ = simulate_supply(count=scans, seed=seed, run_id=run_id)
        say(
            f"publishing {len(payments)} payments and {len(scans_)} scans"
            f" (+{malformed} malformed each), run {run_id} ..."
        )
        with EventProducer(bootstrap) as producer:
            published = [
                publish_payments(
                    producer,
                    settings.topic_transactions,
                    settings.topic_labels,
                    payments,
                    malformed=malformed,
                ),
                publish(producer, settings.topic_supply_chain, scans_, "epc", malformed=malformed),
            ]
        expected = len(payments) + len(scans_)
        logged = _wait_logged(store, background, run_id, expected, wait_s, say)
        _wait_anchored(store, background, wait_s, say)
        accounting = _wait_accounted(settings, since, wait_s)
        say(f"input records: {accounting.summary()}")
    finally:
        background.stop()
    report = _verify(settings, store)
    truth = ground_truth([*payments, *scans_])
    outcomes, quality = _quality(store, run_id, truth)
    anchors = [
        {"tx_hash": a.tx_hash, "block": a.block_number, "checkpoints": len(a.checkpoints)}
        for a in store.anchors()
    ]
    store.close()
    return DemoResult(
        run_id,
        published,
        logged,
        outcomes,
        quality,
        report,
        anchors,
        accounting,
        time.monotonic() - started,
        models,
    )


def _models(settings: Settings, say: Callable[[str], None]) -> dict[str, str]:
    """Each detector's active model, trained first if there is none (or it takes other
    features than this version computes); says which."""
    before = {d: active_sha256(settings.models_path, d) for d in Detector}
    say(f"training models if none are active under {settings.models_path} ...")
    models: dict[str, str] = {}
    for detector, model in ensure_models(settings.models_path).items():
        how = "reused" if model.model_sha256 == before[detector] else "trained"
        models[detector.value] = f"{how} {model.model_id}"
        say(f"{detector.value} model: {how} {model.model_id}")
    return models


def _count_run(store: AnchoredStore, run_id: str) -> int:
    return store.count_entries_by_event_prefix(f"tx-{run_id}-", f"sc-{run_id}-")


def _wait_logged(
    store: AnchoredStore,
    background: Background,
    run_id: str,
    expected: int,
    wait_s: float,
    say: Callable[[str], None],
) -> int:
    def count() -> int:
        background.check_alive()
        return _count_run(store, run_id)

    logged, _ = poll_until(count, lambda n: n >= expected, wait_s, interval_s=POLL_S)
    say(f"logged {logged} of {expected} decisions")
    return logged


def _wait_anchored(
    store: AnchoredStore, background: Background, wait_s: float, say: Callable[[str], None]
) -> None:
    def latest_anchored() -> bool:
        background.check_alive()
        latest = []
        for chain in store.chains():
            cp = store.latest_checkpoint(chain)
            if cp is not None:
                latest.append((cp.chain, cp.size))
        anchored = {a.checkpoints for a in store.anchors() if a.status == "success"}
        return bool(latest) and tuple(latest) in anchored

    try:
        wait_until(latest_anchored, wait_s, interval_s=POLL_S, what="the latest anchors")
    except WaitTimeout as exc:
        raise DemoError("the latest checkpoints were not anchored in time") from exc
    say("the latest checkpoints are anchored")


def _wait_accounted(
    settings: Settings, since: dict[str, dict[int, int]], wait_s: float
) -> Accounting:
    """The outcomes of the input records published since `since`, read back from the
    decisions and dead-letter topics, once each has one (or the wait ran out)."""

    def found() -> Accounting:
        return account(
            settings.require_kafka(), since, settings.topic_decisions, settings.topic_dead_letter
        )

    accounting, _ = poll_until(found, lambda a: not a.without_outcome(), wait_s, interval_s=POLL_S)
    return accounting


def _verify(settings: Settings, store: AnchoredStore) -> Report:
    rpc_url, chain_id = settings.require_rpc()
    reader = connect(rpc_url, chain_id)
    tails = TailCheck(settings.ledger_batch_max, KafkaRederiver(settings.require_kafka()))
    return verify_ledger(
        store, trusted_verifiers(settings), reader, tail_check=tails, archive=ArchiveStore(store)
    )


def _quality(
    store: AnchoredStore, run_id: str, truth: list[GroundTruth]
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Outcome counts per detector, and precision/recall of flagged (non-clean) outcomes."""
    labels = {t.event_id: t.label for t in truth}
    rows = store.outcomes_by_event_prefix(f"tx-{run_id}-", f"sc-{run_id}-")
    outcomes: dict[str, dict[str, int]] = {}
    counts: dict[str, dict[str, int]] = {}
    for detector, event_id, outcome in rows:
        outcomes.setdefault(detector, {}).setdefault(outcome, 0)
        outcomes[detector][outcome] += 1
        flagged = outcome not in ("approve", "authentic")
        c = counts.setdefault(detector, {"tp": 0, "fp": 0, "fn": 0})
        label = labels.get(event_id, 0)
        c["tp"] += int(flagged and label == 1)
        c["fp"] += int(flagged and label == 0)
        c["fn"] += int(not flagged and label == 1)
    quality = {
        d: {
            "precision": c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0,
            "recall": c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0,
            "positives": float(c["tp"] + c["fn"]),
        }
        for d, c in counts.items()
    }
    return outcomes, quality


def load_demo_settings(home: Path | None) -> Settings:
    return load_settings(home=home) if home else load_settings()
