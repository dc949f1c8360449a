"""`attestream simulate transactions|supply-chain`: publish realistic synthetic events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from attestream.settings import load_settings
from attestream.simulation import PublishSummary, publish, publish_payments
from detectors.simulate_payments import simulate_payments, write_labelled_payments
from detectors.simulate_supply import write_labelled_scans
from detectors.supply_worlds import WORLDS, simulate_world
from streams.producer import EventProducer
from streams.topics import ensure_topics

app = typer.Typer(help="Publish simulated events with ground truth.", no_args_is_help=True)

COUNT = typer.Option(1000, "--count", "-n", min=1, help="Valid events to publish.")
RATE = typer.Option(0.0, "--rate", min=0.0, help="Events per second (0: as fast as possible).")
SEED = typer.Option(0, "--seed", help="Simulator seed: the same seed gives the same events.")
RUN_ID = typer.Option(None, "--run-id", help="Makes event ids unique per run (default: seed).")
TRUTH = typer.Option(None, "--truth", help="Write ground truth (JSONL) here.")
MALFORMED = typer.Option(0, "--malformed", min=0, help="Also publish this many broken records.")
AS_JSON = typer.Option(False, "--json", help="Print the summary as JSON.")
DATA_OUT = typer.Option(
    None,
    "--data-out",
    dir_okay=False,
    help="Write the labelled dataset (JSONL) here instead of publishing.",
)


def _run(
    labelled: list[Any],
    topic_of: str,
    key_field: str,
    rate: float,
    malformed: int,
    truth: Path | None,
    as_json: bool,
) -> None:
    settings = load_settings()
    bootstrap = settings.require_kafka()
    ensure_topics(bootstrap, settings.all_topics(), settings.topic_partitions)
    topic = getattr(settings, topic_of)
    with EventProducer(bootstrap) as producer:
        if topic_of == "topic_transactions":
            summary: PublishSummary = publish_payments(
                producer,
                topic,
                settings.topic_labels,
                labelled,
                rate=rate,
                malformed=malformed,
                truth_file=truth,
            )
        else:
            summary = publish(
                producer,
                topic,
                labelled,
                key_field,
                rate=rate,
                malformed=malformed,
                truth_file=truth,
            )
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        labels = f" and {summary.labels} late labels to {settings.topic_labels}"
        typer.echo(
            f"published {summary.valid} events ({summary.positives} positives) and"
            f" {summary.malformed} malformed records to {topic}"
            f"{labels if summary.labels else ''}"
        )


@app.command("transactions")
def transactions(
    count: int = COUNT,
    rate: float = RATE,
    seed: int = SEED,
    run_id: str = RUN_ID,
    truth: Path = TRUTH,
    malformed: int = MALFORMED,
    as_json: bool = AS_JSON,
    data_out: Path = DATA_OUT,
) -> None:
    """Payments keyed by customer id with the handbook's fraud scenarios, card testing,
    account takeovers and compromised merchants, and their late labels (chargebacks and
    confirmations) keyed by terminal on the labels topic, interleaved in arrival order."""
    events = simulate_payments(count=count, seed=seed, run_id=run_id)
    if data_out is not None:
        written = write_labelled_payments(data_out, events)
        typer.echo(f"wrote {written} labelled payments to {data_out}")
        return
    _run(events, "topic_transactions", "customer_id", rate, malformed, truth, as_json)


@app.command("supply-chain")
def supply_chain(
    count: int = COUNT,
    rate: float = RATE,
    seed: int = SEED,
    run_id: str = RUN_ID,
    truth: Path = TRUTH,
    malformed: int = MALFORMED,
    as_json: bool = AS_JSON,
    data_out: Path = DATA_OUT,
    world: str = typer.Option(
        "a",
        "--world",
        envvar="ATTESTREAM_SIMULATE_WORLD",
        help=f"which supply-chain world ({', '.join(WORLDS)}); b was written apart from the"
        " features, to test them on a world they were not shaped by",
    ),
) -> None:
    """EPCIS-style scans keyed by EPC in arrival order, with labelled counterfeits among honest
    noise. World a: cloned serials, impossible travel, injected fakes, grey-market diversion
    and lifecycle violations. World b: pallets, sea and air freight, lossy readers with skewed
    clocks, and its own tactics. See docs/detectors.md."""
    events = simulate_world(world, count, seed, run_id)
    if data_out is not None:
        written = write_labelled_scans(data_out, events)
        typer.echo(f"wrote {written} labelled scans to {data_out}")
        return
    _run(events, "topic_supply_chain", "epc", rate, malformed, truth, as_json)
