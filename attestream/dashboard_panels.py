"""What the Grafana dashboards show: five dashboards of panels, each a PromQL query and a
description saying what a bad value means and what to do (docs/operations.md, "Prometheus and
Grafana"). `attestream.dashboards` turns these into Grafana's JSON with grafana-foundation-sdk.

Rates use Grafana's `$__rate_interval`, which Grafana sets from the scrape interval and the
zoom; a test that evaluates the queries in Prometheus substitutes a fixed window for it.
Counters of rare events (fencing, refusals, anchor errors, verification failures) have no
series until the first event, so their panels add `or on() vector(0)`: 0, not "No data".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RATE = "$__rate_interval"
# Days of anchoring the balance pays for at the last 6 h's spend (a floor of 1 wei a day keeps
# an idle anchor service from dividing by zero).
RUNWAY_DAYS = (
    "attestream_anchor_balance_wei"
    " / clamp_min(rate(attestream_anchor_spent_wei_total[6h]) * 86400, 1)"
)
WEI_PER_ETH = "1e18"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat", "table"] = "timeseries"
    bad_above: float | None = None
    """Where the panel turns red (a threshold line on a graph, the colour of a stat)."""
    bad_below: float | None = None
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


def _q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


def _p95(family: str, by: str) -> str:
    return f"histogram_quantile(0.95, sum by ({by}le) (rate({family}_bucket[{RATE}])))"


OVERVIEW = Dashboard(
    "attestream-overview",
    "attestream / Overview",
    "Events in, decisions out, dead letters, lag and which processes are up.",
    (
        Panel(
            "Events in and decisions out",
            "Input records consumed and decisions emitted per second, per detector. The two "
            "lines should lie on top of each other; decisions below events for minutes means "
            "records are consumed but not decided: see the unaccounted panel and the "
            "DetectionInvariantBroken runbook.",
            (
                Query(
                    f"sum by (detector) (rate(attestream_detect_events_total[{RATE}]))",
                    "events {{detector}}",
                ),
                Query(
                    f"sum by (detector) (rate(attestream_detect_decisions_total[{RATE}]))",
                    "decisions {{detector}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Dead letters",
            "Records sent to the dead-letter topic per second, by reason. A few malformed "
            "records are normal; a rising line means a producer sends bad records or a "
            "schema changed: read the dead-letter topic's reasons (DeadLetterRateHigh "
            "runbook).",
            _q(
                f"sum by (reason) (rate(attestream_detect_dead_letters_total[{RATE}]))",
                "{{reason}}",
            ),
            unit="reqps",
        ),
        Panel(
            "Unaccounted events",
            "Records consumed without a decision or a dead letter yet. Briefly above 0 while "
            "a micro-batch is in flight; staying above 0 breaks the events = decisions + "
            "dead letters invariant (DetectionInvariantBroken runbook).",
            _q("sum by (detector) (attestream_detect_unaccounted_events)", "{{detector}}"),
            bad_above=0.5,
        ),
        Panel(
            "Consumer lag",
            "Messages waiting on the input topics (detect) and on the decisions topic "
            "(ledger run), summed over partitions. A lag that keeps growing means the "
            "process falls behind or is stuck: DetectionLagGrowing / LedgerLagGrowing "
            "runbooks.",
            (
                Query(
                    "sum by (topic) (attestream_detect_consumer_lag_messages)",
                    "detect {{topic}}",
                ),
                Query(
                    "sum by (topic) (attestream_ledger_consumer_lag_messages)",
                    "ledger {{topic}}",
                ),
            ),
        ),
        Panel(
            "Entries logged",
            "Ledger entries appended per second over all chains. It should follow the "
            "decisions line above; 0 while decisions flow means the sequencer is stuck or "
            "refused to sign (Ledger dashboard).",
            _q(f"sum(rate(attestream_ledger_entries_total[{RATE}]))", "entries"),
            unit="reqps",
        ),
        Panel(
            "Processes up",
            "1 while Prometheus can scrape the process (detect, ledger, anchor, serve, "
            "watch). 0 means it crashed or hangs: ProcessDown runbook.",
            _q("up", "{{job}} {{instance}}"),
            kind="stat",
            bad_below=1,
            width=6,
        ),
        Panel(
            "Processes ready",
            "1 while the process works normally; 0 while it waits for a dependency or starts "
            "up. `attestream stack status` names the dependency it waits for.",
            _q('{__name__=~"attestream_[a-z]+_ready"}', "{{job}}"),
            kind="stat",
            bad_below=1,
            width=6,
        ),
    ),
)

DETECTION = Dashboard(
    "attestream-detection",
    "attestream / Detection",
    "Outcomes, scores, drift, active models and latency of the detectors.",
    (
        Panel(
            "Decisions by outcome",
            "Decisions per second by detector and outcome. A sudden jump in flagged "
            "outcomes (decline, review, counterfeit) is either an attack or a broken model: "
            "compare with the drift panel and the active model below.",
            _q(
                f"sum by (detector, outcome) (rate(attestream_detect_decisions_total[{RATE}]))",
                "{{detector}} {{outcome}}",
            ),
            unit="reqps",
        ),
        Panel(
            "Live score distribution",
            "Share of live scores per 0.05-wide bucket over the last hour. A distribution "
            "that moves away from the model card's reference shows as drift below; a spike "
            "at 0 or 1 often means a feature is missing upstream.",
            _q(
                "sum by (detector, le) (increase(attestream_detect_score_bucket[1h]))"
                " / ignoring(le) group_left"
                " sum by (detector) (increase(attestream_detect_score_count[1h]))",
                "{{detector}} ≤ {{le}}",
            ),
            unit="percentunit",
        ),
        Panel(
            "Score drift (PSI)",
            "Population stability index of live scores against the model card's reference "
            "histogram. Below 0.1 is stable; above 0.25 the live traffic no longer looks "
            "like the training data: ScoreDriftHigh runbook (check inputs, then retrain).",
            _q("max by (detector) (attestream_detect_score_drift_psi)", "{{detector}}"),
            bad_above=0.25,
        ),
        Panel(
            "Active model",
            "The model digest each detect worker scores with. Two digests for one detector "
            "means a rollout is half done; a digest nobody expects means the registry was "
            "changed: `attestream models list`.",
            _q(
                "max by (detector, model_digest) (attestream_detect_model_info)",
                "{{detector}} {{model_digest}}",
            ),
            kind="table",
        ),
        Panel(
            "Event to decision latency (p95)",
            "95th percentile from an event's time to its decision, per detector. Rising "
            "latency with rising lag means detect is short of capacity; rising latency "
            "alone means producers send old events.",
            _q(_p95("attestream_detect_event_to_decision_seconds", "detector, "), "{{detector}}"),
            unit="s",
        ),
        Panel(
            "Micro-batch duration (p95)",
            "95th percentile time to score one micro-batch. Seconds here stall the faust "
            "event loop and the consumer may leave its group: reduce the batch size or add "
            "workers.",
            _q(_p95("attestream_detect_batch_duration_seconds", "detector, "), "{{detector}}"),
            unit="s",
            bad_above=1.0,
        ),
        Panel(
            "Model swaps and worker restarts",
            "Models swapped in and detection workers restarted in the last hour. Restarts "
            "mean the faust worker crashed: read the detect log before the restart.",
            (
                Query(
                    "sum by (detector) (increase(attestream_detect_model_swaps_total[1h]))"
                    " or on() vector(0)",
                    "swaps {{detector}}",
                ),
                Query(
                    "sum(increase(attestream_detect_worker_restarts_total[1h]))",
                    "worker restarts",
                ),
            ),
        ),
    ),
)

LEDGER = Dashboard(
    "attestream-ledger",
    "attestream / Ledger",
    "Entries, tree sizes, checkpoints, verification by `forensic watch`, fenced writers.",
    (
        Panel(
            "Entries appended",
            "Entries appended per second per chain. 0 on a chain while decisions for it "
            "wait on the topic (lag) means its sequencer is stuck or refused to sign.",
            _q(
                f"sum by (chain) (rate(attestream_ledger_entries_total[{RATE}]))",
                "chain {{chain}}",
            ),
            unit="reqps",
        ),
        Panel(
            "Tree size",
            "Entries in each chain's Merkle tree. It only grows; a drop means the sequencer "
            "rebuilt a chain from a store that lost entries: run `attestream forensic "
            "verify` now.",
            _q("max by (chain) (attestream_ledger_tree_size_entries)", "chain {{chain}}"),
        ),
        Panel(
            "Checkpoint age",
            "Seconds since each chain's latest signed checkpoint. It grows while no new "
            "decisions arrive, which is harmless; growing while decisions wait is not: "
            "CheckpointAgeHigh runbook.",
            _q("max by (chain) (attestream_ledger_checkpoint_age_seconds)", "chain {{chain}}"),
            unit="s",
            bad_above=600,
        ),
        Panel(
            "Decision to entry latency (p95)",
            "95th percentile from a decision's time to its entry being durable in "
            "ClickHouse. Seconds to minutes means ClickHouse is slow or the sequencer lags.",
            _q(_p95("attestream_ledger_decision_to_entry_seconds", ""), "p95"),
            unit="s",
        ),
        Panel(
            "Since the last verification",
            "Seconds since `forensic watch` last verified the whole log (proofs, "
            "checkpoints, anchors). Above 15 minutes nobody has checked the log lately: "
            "VerificationStale runbook.",
            _q("time() - max(attestream_watch_last_success_timestamp_seconds)", "watch"),
            kind="stat",
            unit="s",
            bad_above=900,
            width=6,
        ),
        Panel(
            "Verification failures",
            "Verification failures by kind in the last hour. Anything above 0 means the "
            "stored log does not match what was signed or anchored, possibly tampering: "
            "VerificationFailed runbook.",
            _q(
                "sum by (kind) (increase(attestream_watch_failures_total[1h])) or on() vector(0)",
                "{{kind}}",
            ),
            kind="stat",
            bad_above=0.5,
            width=6,
        ),
        Panel(
            "Entries not yet verified",
            "Entries the sequencer logged that `forensic watch` has not verified yet, per "
            "chain. A few batches behind is normal; a growing gap means watch cannot keep "
            "up or stopped.",
            _q(
                "max by (chain) (attestream_ledger_tree_size_entries)"
                " - max by (chain) (attestream_watch_verified_tree_size_entries)",
                "chain {{chain}}",
            ),
        ),
        Panel(
            "Fenced writers and refusals",
            "Batches a sequencer did not write because another writer had written the chain "
            "(fenced), and chains a sequencer refused to sign. Fencing during a rebalance is "
            "expected; repeated fencing means two sequencers share a chain; a refusal is "
            "the LedgerRefusedToSign alert.",
            (
                Query(
                    "sum by (chain) (increase(attestream_ledger_fenced_writers_total[1h]))"
                    " or on() vector(0)",
                    "fenced {{chain}}",
                ),
                Query(
                    "max by (chain, kind) (attestream_ledger_signing_refused) or on() vector(0)",
                    "refused {{chain}} {{kind}}",
                ),
            ),
        ),
    ),
)

ANCHORING = Dashboard(
    "attestream-anchoring",
    "attestream / Anchoring",
    "Anchors of checkpoint roots on the EVM chain: freshness, backlog, funds and gas.",
    (
        Panel(
            "Last final anchor",
            "Seconds since the latest anchor became final. Grows while nothing new is "
            "logged; with a backlog (next panel) it means anchoring is stalled: "
            "AnchoringStalled runbook.",
            _q("time() - attestream_anchor_last_final_timestamp_seconds", "age"),
            kind="stat",
            unit="s",
            width=6,
        ),
        Panel(
            "Oldest unanchored decision",
            "Age of the oldest logged decision no final anchor covers. A few anchor "
            "intervals is normal; above 5 minutes (10 intervals of the 30 s default) "
            "decisions are not being anchored: AnchoringStalled runbook.",
            _q("attestream_anchor_oldest_unanchored_age_seconds", "age"),
            kind="stat",
            unit="s",
            bad_above=300,
            width=6,
        ),
        Panel(
            "Backlog",
            "Checkpoints beyond the latest final anchor, per chain. It should fall back to "
            "0 after each anchor; a steady climb means anchors fail or are not mined.",
            _q(
                "max by (chain) (attestream_anchor_unanchored_checkpoints)",
                "chain {{chain}}",
            ),
        ),
        Panel(
            "Balance",
            "Balance of the anchoring account in ether. When it runs out anchoring stops: "
            "top the account up before the runway panel reaches a week.",
            _q(f"attestream_anchor_balance_wei / {WEI_PER_ETH}", "ETH"),
            unit="none",
            width=6,
        ),
        Panel(
            "Runway",
            "Days the balance lasts at the last 6 hours' spend. Below 7 days the "
            "AnchorRunwayLow alert fires: fund the account (docs/operations.md, "
            "AnchorRunwayLow).",
            _q(RUNWAY_DAYS, "days"),
            kind="stat",
            unit="d",
            bad_below=7,
            width=6,
        ),
        Panel(
            "Spend per day",
            "Ether paid in fees per day at the last 6 hours' rate. A jump means gas prices "
            "rose or anchors are sent more often (ATTESTREAM_ANCHOR_INTERVAL_S).",
            _q(f"rate(attestream_anchor_spent_wei_total[6h]) * 86400 / {WEI_PER_ETH}", "ETH"),
            unit="none",
        ),
        Panel(
            "Gas per anchor",
            "Mean gas used by one anchor transaction over the last hour. It is nearly "
            "constant (one root per chain in calldata); a rise means more chains per anchor "
            "or a contract change.",
            _q(
                "increase(attestream_anchor_tx_gas_sum[1h])"
                " / increase(attestream_anchor_tx_gas_count[1h])",
                "gas",
            ),
        ),
        Panel(
            "Anchor errors",
            "Failed anchor rounds in the last hour, by kind (rpc, insufficient_funds, "
            "fee_cap, ...). rpc: the chain node is unreachable; insufficient_funds: fund the "
            "account; fee_cap: gas prices exceed the configured cap.",
            _q(
                "sum by (kind) (increase(attestream_anchor_errors_total[1h])) or on() vector(0)",
                "{{kind}}",
            ),
        ),
    ),
)

INVESTIGATORS = Dashboard(
    "attestream-investigators",
    "attestream / Investigators",
    "`attestream serve`: the investigators' API and page.",
    (
        Panel(
            "Requests",
            "Requests per second by operation and status. A rise in 5xx statuses means "
            "ClickHouse or the chain node is unreachable from the server: read its log.",
            _q(
                f"sum by (operation, status) (rate(attestream_serve_requests_total[{RATE}]))",
                "{{operation}} {{status}}",
            ),
            unit="reqps",
        ),
        Panel(
            "Latency (p95)",
            "95th percentile request duration by operation. Case bundles and proofs over "
            "large logs take seconds; searches should not: a slow search means ClickHouse "
            "is overloaded.",
            _q(_p95("attestream_serve_request_duration_seconds", "operation, "), "{{operation}}"),
            unit="s",
        ),
        Panel(
            "Denied requests",
            "Requests refused per second by reason: unauthenticated (no or unknown token) "
            "or forbidden (a role without the right). A burst of unauthenticated requests "
            "is someone guessing tokens; forbidden ones mean an investigator needs another "
            "role (docs/investigators.md).",
            _q(
                f"sum by (reason) (rate(attestream_serve_denied_total[{RATE}]))",
                "{{reason}}",
            ),
            unit="reqps",
        ),
        Panel(
            "Server up",
            "1 while Prometheus can scrape `attestream serve`; 0 means investigators cannot "
            "reach the API: ProcessDown runbook.",
            _q('up{job="serve"}', "{{instance}}"),
            kind="stat",
            bad_below=1,
            width=6,
        ),
    ),
)

DASHBOARDS = (OVERVIEW, DETECTION, LEDGER, ANCHORING, INVESTIGATORS)
