"""The fraud scenarios the payment simulator injects, as columns of simulated payments.

The first three are the handbook's (Le Borgne et al., *Reproducible Machine Learning for
Credit Card Fraud Detection - Practical Handbook*, chapter 3.2), in its order, later ones
overwriting the scenario of earlier ones:

1. `high_amount`: any payment above 220 is fraud.
2. `compromised_terminal`: each day 2 terminals (per 10,000) are compromised; every payment
   they take in the next 28 days is fraud.
3. `compromised_customer`: each day 3 customers (per 5,000) are compromised; a third of their
   payments in the next 14 days have their amount multiplied by 5 and are fraud.

Three more add payments that did not happen in the handbook's world:

4. `card_testing`: a stolen card number is probed with a burst of tiny online payments a minute
   or two apart, then used for one large purchase within hours.
5. `account_takeover`: a stolen online login: a few payments from a new device, at distant
   risky merchants (quasi-cash, money transfer, betting, jewellery) the customer never uses.
6. `compromised_merchant`: an online merchant whose checkout is in the fraudsters' hands takes
   a few payments a day from stolen cards of customers who never shop there, for 10 days.

Episode counts per day are `floor(rate) + Bernoulli(rate - floor(rate))`, so the handbook's
population gets exactly its 2 terminals and 3 customers a day, and a smaller one
proportionally fewer; every enabled scenario gets at least one episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

SECONDS_PER_DAY = 86_400

HIGH_AMOUNT = 220.0
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMER_COMPROMISE_DAYS = 14
COMPROMISED_AMOUNT_FACTOR = 5.0
TERMINALS_PER_DAY = 2 / 10_000  # compromised terminals per terminal per day
CUSTOMERS_PER_DAY = 3 / 5_000  # compromised cards per customer per day
CARD_TESTS_PER_DAY = 1 / 5_000  # card-testing episodes per customer per day
TAKEOVERS_PER_DAY = 1 / 5_000  # account takeovers per customer per day
MERCHANTS_PER_DAY = 1 / 30_000  # compromised online merchants per terminal per day
MERCHANT_COMPROMISE_DAYS = 10
MERCHANT_FRAUDS_PER_DAY = 4.0
TAKEOVER_MIN_KM = 30.0  # a takeover pays at merchants at least this far from home

HANDBOOK_SCENARIOS = ("high_amount", "compromised_terminal", "compromised_customer")
EXTRA_SCENARIOS = ("card_testing", "account_takeover", "compromised_merchant")
ALL_SCENARIOS = HANDBOOK_SCENARIOS + EXTRA_SCENARIOS

SHOP, ECOMMERCE, RISKY = 0, 1, 2  # terminal kinds


@dataclass
class Population:
    """Customers and terminals as parallel arrays (index = customer / terminal number)."""

    home_x: np.ndarray  # km in the simulated square
    home_y: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    tx_per_day: np.ndarray
    term_x: np.ndarray
    term_y: np.ndarray
    term_kind: np.ndarray
    nearby: list[np.ndarray]  # per customer: the terminals they pay at
    devices: list[list[int]]  # per customer: device numbers, primary first
    device_count: int  # devices numbered so far (fraudsters' devices are added)

    def new_device(self) -> int:
        self.device_count += 1
        return self.device_count - 1


@dataclass
class PaymentColumns:
    """Simulated payments as columns; `device` -1 means "the customer's own, as usual"."""

    ts: np.ndarray  # int64 seconds since the simulation start
    customer: np.ndarray  # int64
    terminal: np.ndarray  # int64
    amount: np.ndarray  # float64
    scenario: np.ndarray  # int8: 0 genuine, else 1 + index in ALL_SCENARIOS
    device: np.ndarray  # int64

    @classmethod
    def empty(cls) -> PaymentColumns:
        return cls.build([], [], [], [], 0, [])

    @classmethod
    def build(
        cls,
        ts: ArrayLike,
        customer: ArrayLike,
        terminal: ArrayLike,
        amount: ArrayLike,
        scenario: int,
        device: ArrayLike,
    ) -> PaymentColumns:
        times = np.asarray(ts, dtype=np.int64)
        return cls(
            times,
            np.asarray(customer, dtype=np.int64),
            np.asarray(terminal, dtype=np.int64),
            np.round(np.asarray(amount, dtype=np.float64), 2),
            np.full(len(times), scenario, dtype=np.int8),
            np.asarray(device, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.ts)

    def concat(self, *others: PaymentColumns) -> PaymentColumns:
        parts = [self, *others]
        return PaymentColumns(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(self))
        )

    def take(self, order: np.ndarray) -> PaymentColumns:
        return PaymentColumns(*(getattr(self, f.name)[order] for f in fields(self)))


def scenario_code(name: str) -> int:
    return ALL_SCENARIOS.index(name) + 1


def episode_days(rng: np.random.Generator, rate: float, days: int) -> np.ndarray:
    """Start day of each episode: `rate` a day on average (see the module docstring)."""
    whole = int(np.floor(rate))
    counts = whole + (rng.random(days) < rate - whole).astype(np.int64)
    starts = np.repeat(np.arange(days), counts)
    return starts if len(starts) else np.array([int(rng.integers(days))])


def inject(
    cols: PaymentColumns,
    pop: Population,
    days: int,
    scenarios: tuple[str, ...],
    rngs: dict[str, np.random.Generator],
) -> PaymentColumns:
    """Apply the enabled scenarios in `ALL_SCENARIOS` order, each with its own generator."""
    steps: dict[str, Callable[..., PaymentColumns]] = {
        "high_amount": _high_amounts,
        "compromised_terminal": _compromised_terminals,
        "compromised_customer": _compromised_customers,
        "card_testing": _card_testing,
        "account_takeover": _account_takeovers,
        "compromised_merchant": _compromised_merchants,
    }
    for name in ALL_SCENARIOS:
        if name in scenarios:
            cols = steps[name](cols, pop, days, rngs[name])
    return cols


def _high_amounts(
    cols: PaymentColumns, pop: Population, days: int, rng: np.random.Generator
) -> PaymentColumns:
    cols.scenario[cols.amount > HIGH_AMOUNT] = scenario_code("high_amount")
    return cols


def _compromised_terminals(
    cols: PaymentColumns, pop: Population, days: int, rng: np.random.Generator
) -> PaymentColumns:
    code = scenario_code("compromised_terminal")
    starts = episode_days(rng, TERMINALS_PER_DAY * len(pop.term_x), days)
    for day, count in zip(*np.unique(starts, return_counts=True), strict=True):
        picks = rng.choice(len(pop.term_x), size=count, replace=False)
        begin = int(day) * SECONDS_PER_DAY
        end = begin + TERMINAL_COMPROMISE_DAYS * SECONDS_PER_DAY
        hit = np.isin(cols.terminal, picks) & (cols.ts >= begin) & (cols.ts < end)
        cols.scenario[hit] = code
    return cols


def _compromised_customers(
    cols: PaymentColumns, pop: Population, days: int, rng: np.random.Generator
) -> PaymentColumns:
    code = scenario_code("compromised_customer")
    by_customer = np.argsort(cols.customer, kind="stable")
    bounds = np.searchsorted(cols.customer[by_customer], np.arange(len(pop.home_x) + 1))
    starts = episode_days(rng, CUSTOMERS_PER_DAY * len(pop.home_x), days)
    for day, count in zip(*np.unique(starts, return_counts=True), strict=True):
        picks = rng.choice(len(pop.home_x), size=count, replace=False)
        begin = int(day) * SECONDS_PER_DAY
        end = begin + CUSTOMER_COMPROMISE_DAYS * SECONDS_PER_DAY
        for customer in picks:
            rows = by_customer[bounds[customer] : bounds[customer + 1]]
            rows = rows[(cols.ts[rows] >= begin) & (cols.ts[rows] < end)]
            chosen = rng.choice(rows, size=len(rows) // 3, replace=False)
            cols.amount[chosen] = np.round(cols.amount[chosen] * COMPROMISED_AMOUNT_FACTOR, 2)
            cols.scenario[chosen] = code
    return cols


def _online_terminals(pop: Population, kinds: tuple[int, ...]) -> np.ndarray:
    online = np.flatnonzero(np.isin(pop.term_kind, kinds))
    return online if len(online) else np.arange(len(pop.term_x))


def _card_testing(
    cols: PaymentColumns, pop: Population, days: int, rng: np.random.Generator
) -> PaymentColumns:
    online = _online_terminals(pop, (ECOMMERCE, RISKY))
    parts = []
    for day in episode_days(rng, CARD_TESTS_PER_DAY * len(pop.home_x), days):
        customer = int(rng.integers(len(pop.home_x)))
        device = pop.new_device()
        probes = int(rng.integers(3, 9))
        gaps = rng.exponential(90.0, probes) + 10
        times = day * SECONDS_PER_DAY + int(rng.integers(SECONDS_PER_DAY)) + np.cumsum(gaps)
        times = np.append(times, times[-1] + rng.exponential(7_200.0) + 600)
        testers = rng.choice(online, size=2)
        terminals = np.append(testers[rng.integers(0, 2, probes)], rng.choice(online))
        amounts = np.append(rng.uniform(0.5, 2.0, probes), rng.uniform(120.0, 600.0))
        parts.append(
            PaymentColumns.build(
                times.astype(np.int64),
                [customer] * (probes + 1),
                terminals,
                amounts,
                scenario_code("card_testing"),
                [device] * (probes + 1),
            )
        )
    return cols.concat(*parts)


def _account_takeovers(
    cols: PaymentColumns, pop: Population, days: int, rng: np.random.Generator
) -> PaymentColumns:
    risky = _online_terminals(pop, (RISKY,))
    parts = []
    for day in episode_days(rng, TAKEOVERS_PER_DAY * len(pop.home_x), days):
        customer = int(rng.integers(len(pop.home_x)))
        km = np.hypot(
            pop.term_x[risky] - pop.home_x[customer], pop.term_y[risky] - pop.home_y[customer]
        )
        far = risky[km >= TAKEOVER_MIN_KM]
        pool = far if len(far) else risky[np.argsort(km)[-3:]]
        n = 1 + int(rng.poisson(1.5))
        start = day * SECONDS_PER_DAY + int(rng.integers(SECONDS_PER_DAY))
        times = start + np.cumsum(rng.exponential(7_200.0, n) + 60).astype(np.int64)
        parts.append(
            PaymentColumns.build(
                times,
                [customer] * n,
                rng.choice(pool, size=n),
                rng.uniform(50.0, 210.0, n),
                scenario_code("account_takeover"),
                [pop.new_device()] * n,
            )
        )
    return cols.concat(*parts)


def _compromised_merchants(
    cols: PaymentColumns, pop: Population, days: int, rng: np.random.Generator
) -> PaymentColumns:
    online = _online_terminals(pop, (ECOMMERCE,))
    parts = []
    for first_day in episode_days(rng, MERCHANTS_PER_DAY * len(pop.term_x), days):
        merchant = int(rng.choice(online))
        device = pop.new_device()  # the fraudsters' checkout bot
        for day in range(first_day, min(days, first_day + MERCHANT_COMPROMISE_DAYS)):
            n = int(rng.poisson(MERCHANT_FRAUDS_PER_DAY))
            victims = rng.integers(len(pop.home_x), size=n)
            # Stolen cards of people who never shop there: not among the merchant's regulars.
            regular = np.array([merchant in pop.nearby[v] for v in victims], dtype=bool)
            victims = victims[~regular]
            times = day * SECONDS_PER_DAY + rng.integers(SECONDS_PER_DAY, size=len(victims))
            parts.append(
                PaymentColumns.build(
                    times,
                    victims,
                    [merchant] * len(victims),
                    rng.uniform(20.0, 200.0, len(victims)),
                    scenario_code("compromised_merchant"),
                    [device] * len(victims),
                )
            )
    return cols.concat(*parts)
