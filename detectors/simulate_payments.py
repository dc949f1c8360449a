"""Seeded synthetic card payments with injected, labelled fraud and late labels.

The population and the genuine payments follow the simulator of Le Borgne et al.,
*Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook*
(chapter 3.2), re-written from its description with its unit square read as kilometres and
placed around Paris:

1. Customers and terminals sit uniformly in a square sized for one terminal per km² (100 km
   for the handbook's 10,000 terminals). A customer has a mean amount U(5, 100), a standard
   deviation of half of it and U(0, 4) payments a day, and pays at the terminals within
   `NEARBY_KM` (5 km) of home.
2. Each day each customer makes Poisson(payments a day) payments at N(12:00, 20,000 s)
   (times outside the day are dropped), of N(mean, sd) (a negative draw is replaced by one
   from U(0, 2 mean)), at a uniformly chosen nearby terminal.
3. Beyond the handbook, terminals have a kind (shop, online merchant, risky merchant) that
   fixes the merchant category (MCC) and with the amount the channel, and customers have one
   to three devices used online and for wallet payments. In the handbook scenarios these
   attributes carry no fraud signal: they are drawn after, and independently of, the fraud.

Fraud is then injected (`detectors.payment_scenarios`). Every payment finally gets a label
that arrives late (`LabelTiming`): a chargeback some days later for fraud, a confirmation once
the window has passed without one for a genuine payment. `payment_label` turns it into the
`PaymentLabel` published on the labels topic.

One `numpy.random.SeedSequence` seeded by `seed` gives each part its own generator, so a seed
and run id always give the same payments, and the handbook-only and the all-scenario runs of
one seed share their genuine payments. Event ids embed the run id, so two runs never collide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from msgspec import Struct

from attestcore.errors import UsageError
from attestcore.schemas import Channel, PaymentLabel, PaymentTransaction
from detectors.labelled import DEFAULT_START, check_run_id, read_jsonl, write_jsonl
from detectors.payment_scenarios import (
    ALL_SCENARIOS,
    ECOMMERCE,
    HANDBOOK_SCENARIOS,
    HIGH_AMOUNT,
    RISKY,
    SECONDS_PER_DAY,
    SHOP,
    PaymentColumns,
    Population,
    inject,
)

__all__ = [
    "ALL_SCENARIOS",
    "HANDBOOK_SCENARIOS",
    "HIGH_AMOUNT",
    "LabelTiming",
    "LabelledPayment",
    "simulate_payment_days",
    "simulate_payments",
]

DEFAULT_COUNT = 60_000
SOURCE = "card-issuer-sim"
CURRENCY = "EUR"
COUNTRY = "FR"
CENTRE_LAT, CENTRE_LON = 48.8566, 2.3522  # the simulated square is centred on Paris
KM_PER_DEGREE = 111.195  # of latitude (mean Earth radius 6371 km)
HANDBOOK_CUSTOMERS, HANDBOOK_TERMINALS = 5_000, 10_000
HANDBOOK_SIDE_KM = 100.0  # the handbook's square, for its 10,000 terminals
NEARBY_KM = 5.0  # the handbook's radius around a customer's home
TX_PER_CUSTOMER = 100  # `simulate_payments(count)` sizes the population with this
MIN_CUSTOMERS = 40
CONTACTLESS_MAX = 50.0  # shops take contactless up to this amount

SHOP_MCCS = ("5411", "5812", "5814", "5541", "5912", "5311", "5651", "5732", "4111", "5999")
ECOMMERCE_MCCS = ("5999", "5732", "5942", "4722", "5815")
RISKY_MCCS = ("6051", "4829", "7995", "5944")  # quasi-cash, money transfer, betting, jewellery
KIND_WEIGHTS = {SHOP: 0.87, ECOMMERCE: 0.10, RISKY: 0.03}
KIND_MCCS = {SHOP: SHOP_MCCS, ECOMMERCE: ECOMMERCE_MCCS, RISKY: RISKY_MCCS}


@dataclass(frozen=True)
class LabelTiming:
    """When labels arrive: genuine after `confirm_days` without a chargeback; fraud after
    `chargeback_min_days` plus an exponential delay of mean `chargeback_extra_days`, capped
    at `confirm_days` (a later dispute is out of this model)."""

    confirm_days: float = 7.0
    chargeback_min_days: float = 1.0
    chargeback_extra_days: float = 2.0


# The handbook's assumption: every label, fraud or genuine, is known exactly 7 days later.
HANDBOOK_LABELS = LabelTiming(7.0, 7.0, 0.0)
# Chargebacks mostly within a few days (median about 2.4 days), confirmations after a week.
REALISTIC_LABELS = LabelTiming(7.0, 1.0, 2.0)


class LabelledPayment(Struct, frozen=True):
    """A simulated payment with its truth: label 1 is fraud, `scenario` names the pattern,
    `label_time` is when the issuer learns the label (see `payment_label`)."""

    event: PaymentTransaction
    label: int
    scenario: str = ""
    label_time: datetime | None = None


def simulate_payments(
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    run_id: str | None = None,
    start: datetime = DEFAULT_START,
    scenarios: Sequence[str] = ALL_SCENARIOS,
    labels: LabelTiming = REALISTIC_LABELS,
) -> list[LabelledPayment]:
    """Exactly `count` payments in event-time order, ids `tx-<run_id>-<n>`, from a population
    of `count / TX_PER_CUSTOMER` customers and twice as many terminals (the handbook's
    ratio) over as many days as that takes."""
    if count < 1:
        raise UsageError(f"count must be positive, got {count}")
    customers = max(MIN_CUSTOMERS, count // TX_PER_CUSTOMER)
    return _simulate(customers, 2 * customers, None, count, seed, run_id, start, scenarios, labels)


def simulate_payment_days(
    days: int,
    customers: int = HANDBOOK_CUSTOMERS,
    terminals: int = HANDBOOK_TERMINALS,
    seed: int = 0,
    run_id: str | None = None,
    start: datetime = DEFAULT_START,
    scenarios: Sequence[str] = HANDBOOK_SCENARIOS,
    labels: LabelTiming = HANDBOOK_LABELS,
) -> list[LabelledPayment]:
    """Every payment of `days` days; by default the handbook's population and scenarios."""
    if min(days, customers, terminals) < 1:
        raise UsageError("days, customers and terminals must be positive")
    return _simulate(customers, terminals, days, None, seed, run_id, start, scenarios, labels)


def _simulate(
    customers: int,
    terminals: int,
    days: int | None,
    count: int | None,
    seed: int,
    run_id: str | None,
    start: datetime,
    scenarios: Sequence[str],
    labels: LabelTiming,
) -> list[LabelledPayment]:
    run = check_run_id(run_id if run_id is not None else f"seed{seed}")
    unknown = set(scenarios) - set(ALL_SCENARIOS)
    if unknown:
        raise UsageError(f"unknown fraud scenarios {sorted(unknown)}; known: {ALL_SCENARIOS}")
    streams = np.random.SeedSequence(seed).spawn(4 + len(ALL_SCENARIOS))
    rng_pop, rng_legit, rng_attrs, rng_labels = (np.random.default_rng(s) for s in streams[:4])
    rngs = {
        name: np.random.default_rng(s) for name, s in zip(ALL_SCENARIOS, streams[4:], strict=True)
    }
    pop = _population(rng_pop, customers, terminals)
    cols, days = _genuine_payments(rng_legit, pop, days, count)
    cols = inject(cols, pop, days, tuple(scenarios), rngs)
    cols = cols.take(np.lexsort((cols.terminal, cols.customer, cols.ts)))
    if count is not None:
        cols = cols.take(np.arange(count))
    return _events(cols, pop, rng_attrs, rng_labels, labels, run, start)


def _population(rng: np.random.Generator, n_customers: int, n_terminals: int) -> Population:
    side = _side_km(n_terminals)
    home_x, home_y = rng.uniform(0, side, n_customers), rng.uniform(0, side, n_customers)
    mean_amount = rng.uniform(5, 100, n_customers)
    tx_per_day = rng.uniform(0, 4, n_customers)
    term_x, term_y = rng.uniform(0, side, n_terminals), rng.uniform(0, side, n_terminals)
    kinds = rng.choice(list(KIND_WEIGHTS), size=n_terminals, p=list(KIND_WEIGHTS.values()))
    nearby = []
    for first in range(0, n_customers, 512):  # 512 x terminals distances at a time
        km = np.hypot(
            home_x[first : first + 512, None] - term_x[None, :],
            home_y[first : first + 512, None] - term_y[None, :],
        )
        for row in km:
            close = np.flatnonzero(row <= NEARBY_KM)
            nearby.append(close if len(close) else np.argsort(row)[:1])
    devices_each = 1 + rng.binomial(2, 0.3, n_customers)
    ends = np.cumsum(devices_each)
    devices = [
        list(range(int(end - n), int(end))) for n, end in zip(devices_each, ends, strict=True)
    ]
    return Population(
        home_x,
        home_y,
        mean_amount,
        mean_amount / 2,
        tx_per_day,
        term_x,
        term_y,
        kinds,
        nearby,
        devices,
        int(ends[-1]),
    )


def _genuine_payments(
    rng: np.random.Generator, pop: Population, days: int | None, count: int | None
) -> tuple[PaymentColumns, int]:
    """Day by day, for `days` days or until at least `count` payments exist."""
    lengths = np.array([len(n) for n in pop.nearby])
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    flat = np.concatenate(pop.nearby)
    parts: list[PaymentColumns] = []
    made, day = 0, 0
    while (days is not None and day < days) or (count is not None and made < count):
        owners = np.repeat(np.arange(len(pop.tx_per_day)), rng.poisson(pop.tx_per_day))
        secs = np.rint(rng.normal(SECONDS_PER_DAY / 2, 20_000, len(owners))).astype(np.int64)
        amounts = rng.normal(pop.mean_amount[owners], pop.std_amount[owners])
        redraw = rng.uniform(0, 2 * pop.mean_amount[owners])
        amounts = np.where(amounts < 0, redraw, amounts)
        picks = (rng.random(len(owners)) * lengths[owners]).astype(np.int64)
        terminals = flat[offsets[owners] + picks]
        kept = (secs >= 0) & (secs < SECONDS_PER_DAY)  # the handbook drops the others
        parts.append(
            PaymentColumns.build(
                day * SECONDS_PER_DAY + secs[kept],
                owners[kept],
                terminals[kept],
                amounts[kept],
                0,
                np.full(int(kept.sum()), -1),
            )
        )
        made += int(kept.sum())
        day += 1
    return PaymentColumns.empty().concat(*parts), day


def _events(
    cols: PaymentColumns,
    pop: Population,
    rng_attrs: np.random.Generator,
    rng_labels: np.random.Generator,
    timing: LabelTiming,
    run: str,
    start: datetime,
) -> list[LabelledPayment]:
    channels, devices = _channels_and_devices(cols, pop, rng_attrs)
    mccs = _terminal_mccs(rng_attrs, pop.term_kind)
    lat, lon = _coordinates(pop.term_x, pop.term_y)
    delays = _label_delays(rng_labels, cols.scenario > 0, timing)
    payments = []
    for i in range(len(cols)):
        t, c = int(cols.terminal[i]), int(cols.customer[i])
        at = start + timedelta(seconds=int(cols.ts[i]))
        event = PaymentTransaction(
            event_id=f"tx-{run}-{i:08d}",
            event_time=at,
            source=SOURCE,
            customer_id=f"C{c:07d}",
            terminal_id=f"T{t:07d}",
            amount=float(cols.amount[i]),
            currency=CURRENCY,
            channel=channels[i],
            mcc=mccs[t],
            country=COUNTRY,
            lat=float(lat[t]),
            lon=float(lon[t]),
            device_id=None if devices[i] < 0 else _device_id(run, int(devices[i])),
        )
        code = int(cols.scenario[i])
        scenario = ALL_SCENARIOS[code - 1] if code else ""
        label_time = at + timedelta(seconds=int(delays[i]))
        payments.append(LabelledPayment(event, 1 if code else 0, scenario, label_time))
    return payments


def _channels_and_devices(
    cols: PaymentColumns, pop: Population, rng: np.random.Generator
) -> tuple[list[Channel], np.ndarray]:
    """Shops take contactless for small sums (a third of those from a phone wallet); online
    merchants get the customer's main device, sometimes another one of theirs. Injected
    payments keep the device they were given."""
    kind = pop.term_kind[cols.terminal]
    chan_u, dev_u = rng.random(len(cols)), rng.random(len(cols))
    contactless = (kind == SHOP) & (cols.amount <= CONTACTLESS_MAX) & (chan_u < 0.7)
    online = kind != SHOP
    channels = [
        Channel.ECOMMERCE if o else Channel.CONTACTLESS if c else Channel.CARD_PRESENT
        for o, c in zip(online, contactless, strict=True)
    ]
    first = np.array([d[0] for d in pop.devices])[cols.customer]
    last = np.array([d[-1] for d in pop.devices])[cols.customer]
    own = np.where(dev_u < 0.85, first, last)
    wallet = contactless & (dev_u < 0.3)
    devices = np.where(online | wallet, own, -1)
    return channels, np.where(cols.device >= 0, cols.device, devices)


def _terminal_mccs(rng: np.random.Generator, kinds: np.ndarray) -> list[str]:
    picks = rng.random(len(kinds))
    choices = [KIND_MCCS[int(k)] for k in kinds]
    return [mccs[int(u * len(mccs))] for mccs, u in zip(choices, picks, strict=True)]


def _side_km(n_terminals: int) -> float:
    """The square's side for one terminal per km²."""
    return HANDBOOK_SIDE_KM * math.sqrt(n_terminals / HANDBOOK_TERMINALS)


def _coordinates(x_km: np.ndarray, y_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kilometres in the square to degrees, the square centred on `CENTRE_LAT, CENTRE_LON`."""
    half = _side_km(len(x_km)) / 2
    lat = CENTRE_LAT + (y_km - half) / KM_PER_DEGREE
    lon = CENTRE_LON + (x_km - half) / (KM_PER_DEGREE * math.cos(math.radians(CENTRE_LAT)))
    return np.round(lat, 5), np.round(lon, 5)


def _label_delays(rng: np.random.Generator, fraud: np.ndarray, timing: LabelTiming) -> np.ndarray:
    """Seconds from each payment to its label (see `LabelTiming`)."""
    extra = rng.exponential(1.0, len(fraud)) * timing.chargeback_extra_days
    chargeback = np.minimum(timing.chargeback_min_days + extra, timing.confirm_days)
    days = np.where(fraud, chargeback, timing.confirm_days)
    seconds: np.ndarray = np.rint(days * SECONDS_PER_DAY).astype(np.int64)
    return seconds


def _device_id(run: str, number: int) -> str:
    return f"dev-{run}-{number:06d}"


def payment_label(payment: LabelledPayment) -> PaymentLabel:
    """The label event of a simulated payment; without a `label_time`, the handbook's delay."""
    event = payment.event
    label_time = payment.label_time or event.event_time + timedelta(
        days=HANDBOOK_LABELS.confirm_days
    )
    return PaymentLabel(
        label_id=f"lb-{event.event_id}",
        label_time=label_time,
        transaction_id=event.event_id,
        transaction_time=event.event_time,
        customer_id=event.customer_id,
        terminal_id=event.terminal_id,
        fraud=bool(payment.label),
    )


def arrival_order(
    payments: Sequence[LabelledPayment],
) -> list[PaymentTransaction | PaymentLabel]:
    """Payments and their labels merged in the order the issuer receives them: by time, a
    label before a payment of the same second, otherwise stable."""
    items: list[tuple[float, int, int, PaymentTransaction | PaymentLabel]] = []
    for i, payment in enumerate(payments):
        items.append((payment.event.event_time.timestamp(), 1, i, payment.event))
        label = payment_label(payment)
        items.append((label.label_time.timestamp(), 0, i, label))
    items.sort(key=lambda item: item[:3])
    return [item[3] for item in items]


def write_labelled_payments(path: Path, payments: list[LabelledPayment]) -> int:
    """Write the labelled dataset (see `detectors.labelled` for the format)."""
    return write_jsonl(path, payments)


def read_labelled_payments(path: Path) -> list[LabelledPayment]:
    return read_jsonl(path, LabelledPayment)
