"""`attestream ledger run|keys`: the sequencer process and its signing key."""

from __future__ import annotations

import json
import signal
from types import FrameType

import typer
from confluent_kafka import Message
from prometheus_client import Counter, Gauge

from attestream.observability import serve_metrics, setup_logging
from attestream.settings import load_settings
from attestream.wiring import ledger_signer, open_store
from ledger.keys import verifier_key_string
from ledger.sequencer import BatchOutcome, Sequencer, SequencerConfig
from streams.intake import HEADER_REASON
from streams.producer import EventProducer
from streams.topics import ensure_topics

app = typer.Typer(help="The ledger sequencer and its checkpoint key.", no_args_is_help=True)

ENTRIES = Counter("attestream_ledger_entries_total", "Entries appended", ["chain"])
DUPLICATES = Counter(
    "attestream_ledger_duplicates_total", "Decisions dropped as already logged", ["chain"]
)
CHECKPOINTS = Counter("attestream_ledger_checkpoints_total", "Checkpoints signed", ["chain"])
REJECTED = Counter(
    "attestream_ledger_rejected_total", "Records on the decisions topic that are not decisions"
)
TREE_SIZE = Gauge("attestream_ledger_tree_size_entries", "Entries in each chain", ["chain"])


@app.command("run")
def run(
    max_idle: float = typer.Option(
        None, help="Exit after this many seconds without decisions (default: run forever)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Consume decisions and append them to the ledger, checkpoint by checkpoint."""
    setup_logging(verbose)
    settings = load_settings()
    bootstrap = settings.require_kafka()
    ensure_topics(bootstrap, [settings.topic_decisions, settings.topic_dead_letter],
                  settings.topic_partitions)  # fmt: skip
    store = open_store(settings, create=True)
    dead_letters = EventProducer(bootstrap)

    def on_batch(outcome: BatchOutcome) -> None:
        chain = str(outcome.chain)
        ENTRIES.labels(chain).inc(outcome.appended)
        DUPLICATES.labels(chain).inc(outcome.duplicates)
        if outcome.appended:
            CHECKPOINTS.labels(chain).inc()
        TREE_SIZE.labels(chain).set(outcome.size)

    def on_reject(msg: Message, reason: str) -> None:
        REJECTED.inc()
        headers = [*(msg.headers() or []), (HEADER_REASON, b"not_a_decision"),
                   ("attestream-dlq-detail", reason[:300].encode())]  # fmt: skip
        dead_letters.send(settings.topic_dead_letter, msg.key(), msg.value() or b"", headers)

    sequencer = Sequencer(
        SequencerConfig(bootstrap, settings.topic_decisions, settings.ledger_group,
                        settings.log_origin, settings.ledger_batch_max),
        store, ledger_signer(settings), on_batch=on_batch, on_reject=on_reject,
    )  # fmt: skip

    def stop(signum: int, frame: FrameType | None) -> None:
        sequencer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serve_metrics(settings.metrics_host, settings.ledger_metrics_port)
    try:
        sequencer.run(max_idle_s=max_idle)
    finally:
        dead_letters.flush()
        store.close()


@app.command("keys")
def keys(as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the checkpoint signer's name and verifier key (creating the key on first use)."""
    settings = load_settings()
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
