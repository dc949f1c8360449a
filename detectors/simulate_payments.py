"""Seeded synthetic card payments with injected, labelled fraud.

The generator follows the simulation of Le Borgne et al., *Reproducible Machine Learning for
Credit Card Fraud Detection - Practical Handbook* (chapter 3.2), re-written for real
coordinates and the attestream wire schema:

1. Customers live near one of a dozen European cities; each has a spending profile (mean
   amount, spread, transactions a day) and one to three devices.
2. Terminals sit near the same cities, each with a merchant category (MCC) and a kind: shop
   till, e-commerce merchant, ATM, or a "risky" merchant (money transfer, betting, quasi-cash).
3. Every day each customer makes Poisson(tx_per_day) payments at terminals within
   `NEARBY_KM` of home, at times around midday, amounts drawn from their profile.
4. Fraud is then injected, later rules overwriting the scenario of earlier ones (as in the
   handbook): any amount above 220 (`high_amount`); compromised terminals whose every payment
   in the next `COMPROMISE_DAYS` is fraud (`compromised_terminal`); compromised customers, a
   third of whose payments in the next `COMPROMISE_DAYS` are multiplied by five
   (`compromised_customer`); and account takeovers, extra payments from a new device at a
   distant risky merchant (`account_takeover`).

Everything is drawn from one `numpy.random.Generator` seeded by `seed`, so a seed and run id
always give the same events. Event ids embed the run id, so two runs never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from msgspec import Struct

from attestream.errors import UsageError
from detectors.geo import haversine_km_matrix
from detectors.labelled import DEFAULT_START, check_run_id, read_jsonl, write_jsonl
from streams.schemas import Channel, PaymentTransaction

DEFAULT_COUNT = 60_000
SOURCE = "card-issuer-sim"
CURRENCY = "EUR"

HIGH_AMOUNT = 220.0  # handbook scenario 1: any payment above this is fraud
COMPROMISE_DAYS = 14  # how long a compromised terminal or card stays in the fraudsters' hands
TERMINAL_COMPROMISE_RATE = 0.0003  # compromised terminals per terminal per day
CUSTOMER_COMPROMISE_RATE = 0.0015  # compromised cards per customer per day
TAKEOVER_RATE = 0.003  # account takeovers per customer per day
TX_PER_CUSTOMER = 100  # events per simulated customer: sets the population for a given count
MIN_CUSTOMERS = 40
NEARBY_KM = 12.0  # customers shop at terminals this close to home...
MIN_NEARBY_TERMINALS = 3  # ...or at least at the few nearest ones
TAKEOVER_MIN_KM = 500.0  # account takeovers come from at least this far from home


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    weight: float


CITIES = (
    City("paris", "FR", 48.8566, 2.3522, 3.0),
    City("lyon", "FR", 45.7640, 4.8357, 1.0),
    City("berlin", "DE", 52.5200, 13.4050, 2.5),
    City("munich", "DE", 48.1351, 11.5820, 1.5),
    City("amsterdam", "NL", 52.3676, 4.9041, 1.5),
    City("brussels", "BE", 50.8503, 4.3517, 1.0),
    City("madrid", "ES", 40.4168, -3.7038, 2.0),
    City("barcelona", "ES", 41.3874, 2.1686, 1.5),
    City("milan", "IT", 45.4642, 9.1900, 1.5),
    City("rome", "IT", 41.9028, 12.4964, 1.5),
    City("vienna", "AT", 48.2082, 16.3738, 1.0),
    City("warsaw", "PL", 52.2297, 21.0122, 1.5),
)

SHOP_MCCS = ("5411", "5812", "5814", "5541", "5912", "5311", "5651", "5732", "4111", "5999")
ECOMMERCE_MCCS = ("5999", "5732", "5942", "4722", "5815")
RISKY_MCCS = ("6051", "4829", "7995", "5944")  # quasi-cash, money transfer, betting, jewellery
ATM_MCC = "6011"
TERMINAL_KINDS = ("shop", "ecommerce", "atm", "risky")
TERMINAL_KIND_WEIGHTS = (0.80, 0.10, 0.07, 0.03)


class LabelledPayment(Struct, frozen=True):
    """A simulated payment with its truth: label 1 is fraud, `scenario` names the pattern."""

    event: PaymentTransaction
    label: int
    scenario: str = ""


@dataclass
class _Population:
    """Customers and terminals as parallel arrays (index = customer / terminal number)."""

    cust_lat: np.ndarray
    cust_lon: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    tx_per_day: np.ndarray
    devices: list[list[str]]
    term_lat: np.ndarray
    term_lon: np.ndarray
    term_city: np.ndarray
    term_kind: list[str]
    term_mcc: list[str]
    nearby: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Tx:
    """A payment while it is being simulated: mutable until fraud injection is done."""

    ts: int  # seconds since the simulation start
    customer: int
    terminal: int
    amount: float
    channel: Channel
    device: str | None
    label: int = 0
    scenario: str = ""


def simulate_payments(
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    run_id: str | None = None,
    start: datetime = DEFAULT_START,
) -> list[LabelledPayment]:
    """Exactly `count` labelled payments in event-time order, ids `tx-<run_id>-<n>`."""
    run = check_run_id(run_id if run_id is not None else f"seed{seed}")
    if count < 1:
        raise UsageError(f"count must be positive, got {count}")
    rng = np.random.default_rng(seed)
    n_customers = max(MIN_CUSTOMERS, count // TX_PER_CUSTOMER)
    pop = _population(rng, n_customers, 2 * n_customers)
    txs, days = _legit_payments(rng, pop, count)
    _mark_high_amounts(txs)
    _compromise_terminals(rng, pop, txs, days)
    _compromise_customers(rng, pop, txs, days)
    txs.extend(_account_takeovers(rng, pop, days))
    txs.sort(key=lambda t: (t.ts, t.customer, t.terminal))
    return [_to_event(pop, tx, i, run, start) for i, tx in enumerate(txs[:count])]


def _device_id(rng: np.random.Generator) -> str:
    return f"dev-{int(rng.integers(0, 2**48)):012x}"


def _population(rng: np.random.Generator, n_customers: int, n_terminals: int) -> _Population:
    weights = np.array([c.weight for c in CITIES])
    weights = weights / weights.sum()
    c_lat = np.array([c.lat for c in CITIES])
    c_lon = np.array([c.lon for c in CITIES])
    home = rng.choice(len(CITIES), size=n_customers, p=weights)
    site = rng.choice(len(CITIES), size=n_terminals, p=weights)
    mean_amount = rng.uniform(5, 100, n_customers)
    kinds = rng.choice(len(TERMINAL_KINDS), size=n_terminals, p=TERMINAL_KIND_WEIGHTS)
    term_kind = [TERMINAL_KINDS[k] for k in kinds]
    pop = _Population(
        cust_lat=c_lat[home] + rng.normal(0, 0.10, n_customers),
        cust_lon=c_lon[home] + rng.normal(0, 0.14, n_customers),
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        tx_per_day=rng.uniform(0, 4, n_customers),
        devices=[
            [_device_id(rng) for _ in range(1 + rng.binomial(2, 0.3))] for _ in range(n_customers)
        ],
        term_lat=c_lat[site] + rng.normal(0, 0.12, n_terminals),
        term_lon=c_lon[site] + rng.normal(0, 0.17, n_terminals),
        term_city=site,
        term_kind=term_kind,
        term_mcc=[_terminal_mcc(rng, kind) for kind in term_kind],
    )
    dist = haversine_km_matrix(pop.cust_lat, pop.cust_lon, pop.term_lat, pop.term_lon)
    for row in dist:
        close = np.nonzero(row <= NEARBY_KM)[0]
        if len(close) < MIN_NEARBY_TERMINALS:
            close = np.sort(np.argsort(row)[:MIN_NEARBY_TERMINALS])
        pop.nearby.append(close)
    return pop


def _terminal_mcc(rng: np.random.Generator, kind: str) -> str:
    table = {"shop": SHOP_MCCS, "ecommerce": ECOMMERCE_MCCS, "risky": RISKY_MCCS}
    if kind == "atm":
        return ATM_MCC
    choices = table[kind]
    return str(choices[int(rng.integers(len(choices)))])


def _legit_payments(
    rng: np.random.Generator, pop: _Population, count: int
) -> tuple[list[_Tx], int]:
    """Day by day until at least `count` payments exist; returns them and the number of days."""
    txs: list[_Tx] = []
    day = 0
    n_customers = len(pop.mean_amount)
    while len(txs) < count:
        owners = np.repeat(np.arange(n_customers), rng.poisson(pop.tx_per_day))
        n = len(owners)
        secs = rng.normal(43_200, 20_000, n).astype(np.int64)
        amounts = rng.normal(pop.mean_amount[owners], pop.std_amount[owners])
        redraw = rng.uniform(0, 2 * pop.mean_amount[owners])
        amounts = np.where(amounts < 0, redraw, amounts)
        picks, chan_u, dev_u = rng.random(n), rng.random(n), rng.random(n)
        for j in range(n):
            if not 0 <= secs[j] < 86_400:  # the handbook drops times outside the day
                continue
            c = int(owners[j])
            nearby = pop.nearby[c]
            terminal = int(nearby[int(picks[j] * len(nearby))])
            amount = round(float(amounts[j]), 2)
            channel, device = _channel_and_device(pop, c, terminal, amount, chan_u[j], dev_u[j])
            if channel is Channel.ATM:
                amount = max(20.0, round(amount / 10) * 10.0)
            txs.append(_Tx(day * 86_400 + int(secs[j]), c, terminal, amount, channel, device))
        day += 1
    return txs, day


def _channel_and_device(
    pop: _Population, customer: int, terminal: int, amount: float, chan_u: float, dev_u: float
) -> tuple[Channel, str | None]:
    """Shops take contactless for small sums; remote and wallet payments carry a device id."""
    kind = pop.term_kind[terminal]
    devices = pop.devices[customer]
    device = devices[0] if dev_u < 0.85 or len(devices) == 1 else devices[-1]
    if kind == "atm":
        return Channel.ATM, None
    if kind in ("ecommerce", "risky"):
        return Channel.ECOMMERCE, device
    if amount <= 50 and chan_u < 0.7:
        return Channel.CONTACTLESS, device if dev_u < 0.3 else None
    return Channel.CARD_PRESENT, None


def _mark(tx: _Tx, scenario: str) -> None:
    tx.label = 1
    tx.scenario = scenario


def _mark_high_amounts(txs: list[_Tx]) -> None:
    for tx in txs:
        if tx.amount > HIGH_AMOUNT:
            _mark(tx, "high_amount")


def _episodes(rng: np.random.Generator, rate: float, population: int, days: int) -> int:
    """How many compromises to inject: Poisson, but at least one so every scenario occurs."""
    return max(1, int(rng.poisson(rate * population * days)))


def _compromise_terminals(
    rng: np.random.Generator, pop: _Population, txs: list[_Tx], days: int
) -> None:
    by_terminal: dict[int, list[_Tx]] = {}
    for tx in txs:
        by_terminal.setdefault(tx.terminal, []).append(tx)
    used = np.array(sorted(by_terminal))
    for _ in range(_episodes(rng, TERMINAL_COMPROMISE_RATE, len(pop.term_lat), days)):
        terminal = int(used[int(rng.integers(len(used)))])
        begin = int(rng.integers(days)) * 86_400
        end = begin + COMPROMISE_DAYS * 86_400
        for tx in by_terminal[terminal]:
            if begin <= tx.ts < end:
                _mark(tx, "compromised_terminal")


def _compromise_customers(
    rng: np.random.Generator, pop: _Population, txs: list[_Tx], days: int
) -> None:
    by_customer: dict[int, list[_Tx]] = {}
    for tx in txs:
        by_customer.setdefault(tx.customer, []).append(tx)
    for _ in range(_episodes(rng, CUSTOMER_COMPROMISE_RATE, len(pop.mean_amount), days)):
        customer = int(rng.integers(len(pop.mean_amount)))
        begin = int(rng.integers(days)) * 86_400
        end = begin + COMPROMISE_DAYS * 86_400
        for tx in by_customer.get(customer, []):
            if begin <= tx.ts < end and rng.random() < 1 / 3:
                tx.amount = round(tx.amount * 5, 2)
                _mark(tx, "compromised_customer")


def _account_takeovers(rng: np.random.Generator, pop: _Population, days: int) -> list[_Tx]:
    """A stolen login: a burst of remote payments from a new device at a far risky merchant."""
    risky = np.array([t for t, kind in enumerate(pop.term_kind) if kind == "risky"], dtype=int)
    candidates = risky if len(risky) else np.arange(len(pop.term_lat))
    injected: list[_Tx] = []
    for _ in range(_episodes(rng, TAKEOVER_RATE, len(pop.mean_amount), days)):
        customer = int(rng.integers(len(pop.mean_amount)))
        dist = haversine_km_matrix(
            pop.cust_lat[customer : customer + 1],
            pop.cust_lon[customer : customer + 1],
            pop.term_lat[candidates],
            pop.term_lon[candidates],
        )[0]
        far = candidates[dist >= TAKEOVER_MIN_KM]
        pool = far if len(far) else candidates[np.argsort(dist)[-3:]]
        device = _device_id(rng)
        ts = int(rng.integers(days * 86_400))
        for _ in range(1 + int(rng.poisson(1.5))):
            terminal = int(pool[int(rng.integers(len(pool)))])
            amount = round(float(rng.uniform(40, 210)), 2)
            tx = _Tx(ts, customer, terminal, amount, Channel.ECOMMERCE, device)
            _mark(tx, "account_takeover")
            injected.append(tx)
            ts += int(rng.exponential(7_200)) + 30
    return injected


def _to_event(pop: _Population, tx: _Tx, index: int, run: str, start: datetime) -> LabelledPayment:
    event = PaymentTransaction(
        event_id=f"tx-{run}-{index:08d}",
        event_time=start + timedelta(seconds=tx.ts),
        source=SOURCE,
        customer_id=f"C{tx.customer:07d}",
        terminal_id=f"T{tx.terminal:07d}",
        amount=tx.amount,
        currency=CURRENCY,
        channel=tx.channel,
        mcc=pop.term_mcc[tx.terminal],
        country=CITIES[int(pop.term_city[tx.terminal])].country,
        lat=round(float(pop.term_lat[tx.terminal]), 5),
        lon=round(float(pop.term_lon[tx.terminal]), 5),
        device_id=tx.device,
    )
    return LabelledPayment(event, tx.label, tx.scenario)


def write_labelled_payments(path: Path, payments: list[LabelledPayment]) -> int:
    """Write the labelled dataset (see `detectors.labelled` for the format)."""
    return write_jsonl(path, payments)


def read_labelled_payments(path: Path) -> list[LabelledPayment]:
    return read_jsonl(path, LabelledPayment)
