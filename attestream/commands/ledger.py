"""`attestream ledger run|keys|migrate`: the sequencer process, its signing key and the
ledger's schema."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from types import FrameType

import typer
from confluent_kafka import Message

from anchoring.store import AnchoredStore
from attestcore.backoff import Outage, keep_trying
from attestcore.errors import SigningRefusedError
from attestream.ledger_metrics import (
    ANCHOR_CLAIMS_UNAVAILABLE,
    CONSUMER_LAG,
    REGISTRY,
    REJECTED,
    SIGNING_REFUSED,
    LedgerMetrics,
)
from attestream.observability import Readiness, process_registry, serve_metrics, setup_logging
from attestream.settings import Settings, load_settings
from attestream.wiring import create_ledger_key, ledger_signer, open_store, signing_guard
from attestream.workers import registered
from ledger.archive_store import ArchiveStore
from ledger.events import OnReject, RejectReason
from ledger.keys import verifier_key_string
from ledger.sequencer import CRASH_AT_ENV, Sequencer, SequencerConfig
from streams.intake import (
    HEADER_DETAIL,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
    bounded,
)
from streams.lag import LagMonitor, LagReader
from streams.producer import EventProducer
from streams.topics import ensure_topics

__all__ = ["SIGNING_REFUSED", "app"]

app = typer.Typer(help="The ledger sequencer and its checkpoint key.", no_args_is_help=True)

log = logging.getLogger("attestream.ledger")

# At shutdown, dead letters (records that are not decisions, conflicting events) get this
# long to reach the broker. Each batch's are flushed before its entries are written (step 0b
# of ledger/sequencer.py), so only those of records after the log's head can be left, and
# the next start reads those records again.
SHUTDOWN_FLUSH_S = 3.0
# While lingering after a refusal, a stop request is noticed this often.
LINGER_STEP_S = 0.5


@app.command("run")
def run(
    max_idle: float = typer.Option(
        None, help="Exit after this many seconds without decisions (default: run forever)."
    ),
    fetch_max_wait_ms: int | None = typer.Option(
        None,
        "--fetch-max-wait-ms",
        min=1,
        max=60_000,
        envvar="ATTESTREAM_LEDGER_FETCH_MAX_WAIT_MS",
        help="Longest the broker may hold a fetch of a caught-up partition (default 20).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Consume decisions and append them to the ledger, checkpoint by checkpoint. Outages of
    ClickHouse or the broker are waited out; SIGTERM finishes the batch in hand and exits."""
    setup_logging(verbose)
    settings = load_settings()
    if fetch_max_wait_ms is not None:
        settings = settings.model_copy(update={"ledger_fetch_max_wait_ms": fetch_max_wait_ms})
    signer = ledger_signer(settings)  # first: without a key nothing else is worth starting
    bootstrap = settings.require_kafka()
    registry = process_registry(REGISTRY)
    readiness = Readiness("ledger", ("clickhouse", "kafka"), registry)
    sequencer: Sequencer | None = None
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if sequencer is not None:
            sequencer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = serve_metrics(settings.metrics_host, settings.ledger_metrics_port, registry)
    with registered(settings.home, "ledger", settings.metrics_host, port):
        topics = [settings.topic_decisions, settings.topic_dead_letter]
        outage = Outage(log, readiness)
        if not keep_trying(
            lambda: ensure_topics(bootstrap, topics, settings.topic_partitions),
            outage,
            lambda: stopping,
        ):
            return
        # No connection yet: the sequencer creates the schema once ClickHouse answers.
        store = AnchoredStore(settings.require_clickhouse())
        dead_letters = EventProducer(bootstrap)
        guard = signing_guard(
            settings,
            signer,
            store,
            anchors_unavailable=lambda cause: ANCHOR_CLAIMS_UNAVAILABLE.inc(),
        )
        sequencer = Sequencer(
            _sequencer_config(settings),
            store,
            signer,
            events=LedgerMetrics(readiness),
            on_reject=_dead_letter_to(dead_letters, settings),
            guard=guard,
            archive=ArchiveStore(store),
            flush_rejects=dead_letters.flush,
        )
        if stopping:
            sequencer.stop()
        lag = LagMonitor(
            LagReader(bootstrap, settings.ledger_group, [settings.topic_decisions]), CONSUMER_LAG
        ).start()
        try:
            sequencer.run(max_idle_s=max_idle)
        except SigningRefusedError:
            # The gauge is set: keep serving it until Prometheus has scraped it.
            deadline = time.monotonic() + settings.ledger_refusal_linger_s
            while not stopping and time.monotonic() < deadline:
                time.sleep(LINGER_STEP_S)
            raise
        finally:
            lag.stop()
            dead_letters.close(SHUTDOWN_FLUSH_S)
            store.close()


def _sequencer_config(settings: Settings) -> SequencerConfig:
    return SequencerConfig(
        settings.require_kafka(),
        settings.topic_decisions,
        settings.ledger_group,
        settings.log_origin,
        settings.ledger_batch_max,
        session_timeout_ms=settings.ledger_session_timeout_ms,
        max_poll_interval_ms=settings.ledger_max_poll_interval_ms,
        fetch_max_wait_ms=settings.ledger_fetch_max_wait_ms,
        # Hidden fault injection for the crash tests (docs/operations.md); unset in production.
        crash_at=os.environ.get(CRASH_AT_ENV, ""),
    )


def _dead_letter_to(producer: EventProducer, settings: Settings) -> OnReject:
    """The ledger's dead letters: the record as read, with the detection worker's headers
    (reason, detail, where it was read on the decisions topic)."""

    def on_reject(msg: Message, reason: RejectReason, detail: str) -> None:
        REJECTED.labels(reason.value).inc()
        headers = [
            *(msg.headers() or []),
            (HEADER_REASON, reason.value.encode()),
            (HEADER_DETAIL, bounded(detail).encode(errors="replace")),
            (HEADER_TOPIC, (msg.topic() or "").encode(errors="replace")),
            (HEADER_PARTITION, str(msg.partition()).encode()),
            (HEADER_OFFSET, str(msg.offset()).encode()),
        ]
        producer.send(settings.topic_dead_letter, msg.key(), msg.value() or b"", headers)

    return on_reject


@app.command("keys")
def keys(
    create: bool = typer.Option(
        False,
        "--create",
        envvar="ATTESTREAM_LEDGER_KEYS_CREATE",
        help="Create the signing key in the key file (never overwrites an existing one).",
    ),
    as_json: bool = typer.Option(False, "--json", envvar="ATTESTREAM_JSON"),
) -> None:
    """Print the checkpoint signer's name and verifier key; it only reads (exit 2 when there
    is no key). --create makes the key in the configured home, once."""
    settings = load_settings()
    if create:
        signer = create_ledger_key(settings)
        typer.echo(f"created the ledger signing key {settings.ledger_key_path}", err=True)
    else:
        signer = ledger_signer(settings)
    verifier = signer.verifier()
    info = {
        "origin_prefix": settings.log_origin,
        "key_name": verifier.name,
        "verifier_key": verifier_key_string(verifier),
        "key_file": str(settings.ledger_key_path),
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for name, value in info.items():
        typer.echo(f"{name}: {value}")


@app.command("migrate")
def migrate() -> None:
    """Create the ledger's database and tables, or bring older ones to this version's schema.
    Verification never does this: it only reads, and works with a read-only ClickHouse user."""
    settings = load_settings()
    store = open_store(settings, create=True)
    store.close()
    typer.echo(f"the ledger schema in database {store.database!r} is up to date")
