"""One sequencer of the scale-out figure, as its own process (`bench.scaleout` starts one or
two at once).

`python -m bench.ledger_worker BOOTSTRAP CLICKHOUSE_URL TOPIC RECORDS BATCH_MAX` runs the
sequencer of figure a (`bench.pipeline.run_ledger`: its own consumer group, a fresh database,
so its own chain) over the whole of the pre-filled decisions topic, checks the ledger, drops
the database and prints one JSON line: when its first batch was consumed and its last offsets
committed (`time.perf_counter()`, the system's monotonic clock, so that the times of two
processes compare) and the CPU seconds it used.
"""

from __future__ import annotations

import sys
import time

import msgspec

from bench.pipeline import run_ledger


class LedgerSpan(msgspec.Struct):
    records: int
    started: float
    finished: float
    cpu_seconds: float


def main(argv: list[str]) -> None:
    bootstrap, clickhouse_url, topic, records, batch_max = argv
    cpu = time.process_time()
    run, store = run_ledger(bootstrap, clickhouse_url, topic, int(records), int(batch_max))
    finished = time.perf_counter()
    try:
        span = LedgerSpan(run.records, finished - run.seconds, finished, time.process_time() - cpu)
    finally:
        store.drop_database()
        store.close()
    sys.stdout.write(msgspec.json.encode(span).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
