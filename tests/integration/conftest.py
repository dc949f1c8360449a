"""Fixtures of the tamper suites (test_tamper.py, test_tamper_history.py): `pristine`, one
small ledger per module written by the real sequencer from the real broker (24 decisions, at
most 5 per batch, so several signed checkpoints), and `ledger`, each test's own copy of it in a
fresh database, which costs a fraction of a second instead of a group join."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_helpers import (
    copy_ledger,
    fresh_database_url,
    sequenced_ledger,
)
from outage_drills import DrillStack, drill_stack
from pydantic import SecretStr
from tamper_ledger import BATCH, ENTRIES, Ledger

from attestream.settings import Settings
from attestream.wiring import trusted_verifiers


@pytest.fixture(scope="module")
def pristine(stack: Any) -> Iterator[Ledger]:
    """A ledger written by the real sequencer from the real broker, verified untouched."""
    suffix = os.urandom(5).hex()
    settings = Settings(
        home=stack.home,
        kafka_bootstrap=stack.kafka_bootstrap,
        rpc_url=stack.rpc_url,
        clickhouse_url=fresh_database_url(stack.clickhouse_url),
        chain_id=stack.chain_id,
        anchor_key_file=stack.anchor_key_file,
        topic_decisions=f"decisions-{suffix}",
        ledger_group=f"ledger-{suffix}",
        ledger_key=None,
        trusted_keys="",
        ledger_key_file=stack.home / "keys" / f"ledger-{suffix}.key",
    )
    store = sequenced_ledger(settings, ENTRIES, BATCH)
    ledger = Ledger(settings, store, trusted_verifiers(settings))
    assert len(ledger.sizes()) >= 3 and ledger.sizes()[-1] == ENTRIES
    assert ledger.verify() == set()
    yield ledger
    store.execute("DROP DATABASE IF EXISTS {db}")
    store.close()


@pytest.fixture
def ledger(pristine: Ledger) -> Iterator[Ledger]:
    """This test's own copy of the pristine ledger, in a fresh database."""
    url = fresh_database_url(pristine.settings.require_clickhouse())
    store = copy_ledger(pristine.store, url)
    settings = pristine.settings.model_copy(update={"clickhouse_url": SecretStr(url)})
    yield Ledger(settings, store, pristine.verifiers)
    store.execute("DROP DATABASE IF EXISTS {db}")
    store.close()


@pytest.fixture(scope="module")
def drill_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillStack]:
    """A stack for one test module's drills."""
    yield from drill_stack(tmp_path_factory.mktemp("drill-home"))


@pytest.fixture
def drill(drill_services: DrillStack) -> Iterator[DrillStack]:
    """The module's drill stack; after each test every service runs again, also when the
    test failed with a service stopped (its failure stays its own)."""
    yield drill_services
    drill_services.restart()
