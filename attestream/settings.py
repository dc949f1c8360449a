"""Typed settings for every attestream process.

Every field can come from the environment (`ATTESTREAM_<FIELD>`, e.g.
`ATTESTREAM_KAFKA_BOOTSTRAP`). Endpoints left unset fall back to the local stack's state file
(`<home>/stack.json`, written by `attestream stack up`), so on a dev machine nothing needs
configuring; in production set them explicitly (see docs/operations.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from attestcore.errors import AnchorKeyError, ConfigError

SEPOLIA_CHAIN_ID = 11155111
SEPOLIA_CONFIRMATIONS = 3
STACK_STATE_FILE = "stack.json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTESTREAM_", extra="ignore")

    home: Path = Field(default=Path(".attestream"), description="state, keys and models")

    # Kafka
    kafka_bootstrap: str | None = None
    topic_transactions: str = "attestream.transactions"
    topic_supply_chain: str = "attestream.supply-chain"
    topic_decisions: str = "attestream.decisions"
    topic_dead_letter: str = "attestream.dead-letter"
    # Late payment labels (chargebacks, confirmations), keyed by terminal: terminal risk.
    topic_labels: str = "attestream.labels"
    topic_partitions: int = Field(default=1, ge=1, description="partitions for topics we create")

    # ClickHouse: clickhouse://user:password@host:port/database. Secret: the URL carries the
    # password (printed only through attestcore.redaction.mask_url).
    clickhouse_url: SecretStr | None = None

    # EVM anchoring (docs/operations.md). Sepolia is the documented production default: with
    # only ATTESTREAM_RPC_URL set, the chain id is Sepolia's; the local stack sets both.
    # Secret: hosted providers put the API key in the URL's path or query.
    rpc_url: SecretStr | None = None
    chain_id: int | None = None
    anchor_key: SecretStr | None = Field(default=None, description="hex private key")
    anchor_key_file: Path | None = None
    # The anchor account's address, for verifiers that hold no anchor key: `forensic verify`
    # demands a stored anchor for every anchor transaction of this account. Unset: the
    # address of the anchor key above.
    anchor_address: str | None = None
    anchor_interval_s: float = Field(default=30.0, gt=0)
    # Blocks (the anchor's own included) before an anchor is final. Unset: 3 on Sepolia (36 s
    # of 12 s slots; deeper reorgs are still watched for, see anchor_reorg_watch_blocks) and 1
    # elsewhere, because a local anvil mines a block only when a transaction arrives.
    anchor_confirmations: int | None = Field(default=None, ge=1)
    # A final anchor is re-checked until this many blocks follow it: two Sepolia epochs, after
    # which the beacon chain has finalized its block and no reorg can remove it.
    anchor_reorg_watch_blocks: int = Field(default=64, ge=0)
    # Never pay more than this per gas, whatever eth_feeHistory says: at the 22,480 gas of
    # one anchor, 200 gwei caps an anchor at 0.0045 ETH.
    anchor_fee_cap_gwei: float = Field(default=200.0, gt=0)
    # The tip when recent blocks paid none (eth_feeHistory rewards of 0 on a quiet chain):
    # some tip keeps a block builder interested.
    anchor_min_priority_fee_gwei: float = Field(default=0.01, ge=0)
    # A transaction not mined after this long is replaced with bumped fees: 15 Sepolia slots,
    # long enough that a normal fee spike passes first.
    anchor_replace_after_s: float = Field(default=180.0, gt=0)
    # Nodes refuse a replacement that raises both fees by less than 10%.
    anchor_fee_bump_percent: int = Field(default=20, ge=10)
    # Refuse to send when the balance pays for fewer than this many anchors at the current
    # maximum fee: the operator is warned (metric, error) while there is still time to fund.
    anchor_min_balance_anchors: int = Field(default=20, ge=1)
    # How often the lifecycle is advanced (receipts, confirmations, replacement): a third of
    # Sepolia's 12 s slot, so a confirmation is noticed within a few seconds.
    anchor_poll_s: float = Field(default=4.0, gt=0)
    # After a failed round (RPC unreachable, account unfunded) the next try waits from the
    # initial to the maximum delay, doubling with jitter: quick after a blip, quiet in an outage.
    anchor_retry_initial_s: float = Field(default=1.0, gt=0)
    anchor_retry_max_s: float = Field(default=60.0, gt=0)

    # Ledger
    log_origin: str = "attestream.local/ledger"
    ledger_key: SecretStr | None = Field(
        default=None, description="checkpoint signing key string (PRIVATE+KEY+...)"
    )
    ledger_key_file: Path | None = None
    # The last checkpoint the sequencer signed per origin and key (docs/operations.md, "The
    # signer state file"). Unset: next to the key file (`<key name>.state.json`), or
    # `<home>/keys/ledger.state.json` when the key comes from ATTESTREAM_LEDGER_KEY.
    ledger_state_file: Path | None = None
    # After refusing to sign, `ledger run` keeps serving its metrics this long before it
    # exits, so that Prometheus (15-30 s scrape intervals) sees the refusal gauge.
    ledger_refusal_linger_s: float = Field(default=30.0, ge=0)
    trusted_keys: str = Field(default="", description="verifier keys, comma or newline separated")
    # 10,000 measured ~10% faster than 5,000 (docs/benchmarks.md); 20,000 added nothing.
    ledger_batch_max: int = Field(default=10_000, ge=1)
    ledger_group: str = "attestream-ledger"
    # A crashed sequencer's chains move to another one after the session timeout; a batch (or
    # the rebuild of assigned chains) longer than the poll interval makes a sequencer leave
    # the group, and Tansu waits up to the poll interval for members during a rebalance.
    # Defaults: ledger.sequencer.SESSION_TIMEOUT_MS and MAX_POLL_INTERVAL_MS, which say why;
    # tests lower both to rebalance in seconds.
    ledger_session_timeout_ms: int = Field(default=10_000, ge=1000)
    ledger_max_poll_interval_ms: int = Field(default=60_000, ge=1000)
    # A batch is logged as soon as nothing more is buffered (ledger/batches.py); this is how
    # long the broker may hold the sequencer's fetch of a caught-up partition, a decision
    # that arrives meanwhile waiting for its answer (ledger.sequencer.FETCH_MAX_WAIT_MS).
    ledger_fetch_max_wait_ms: int = Field(default=20, ge=1, le=60_000)

    # Detection. A micro-batch is decided as soon as the worker has nothing more buffered, or
    # at its size cap; the window is only the longest it waits while the consumer delivers
    # other records (docs/operations.md, "Detection: latency").
    detect_batch_max: int = Field(default=512, ge=1)
    detect_batch_within_s: float = Field(default=0.05, gt=0)
    # How long the broker may hold the consumer's fetch of a caught-up partition: a record
    # that arrives meanwhile may wait up to this for the fetch's answer.
    detect_fetch_max_wait_ms: int = Field(default=20, ge=1, le=60_000)
    detect_app_id: str = "attestream-detect"
    # Which consumer runs the detection worker: `kafka` (a confluent-kafka loop,
    # streams.kafka_worker: a third of faust's CPU time per decision) or `faust` (agents and
    # Tables). Both use the same consumer group and the same changelog topics and format, so
    # a deployment switches by stopping every worker and starting them with the other engine
    # (docs/operations.md, "Detection: the engine").
    detect_engine: Literal["faust", "kafka"] = "kafka"
    models_dir: Path | None = None
    # The model each detector scores with: a sha256, a model id or 8+ hex digits of the
    # sha256 pins it; empty follows the registry's active model (`attestream models activate`).
    fraud_model: str = ""
    authenticity_model: str = ""
    # How often a worker re-reads the registry's active models and swaps a new one in between
    # micro-batches (docs/operations.md); 0 never does: a new model then needs a restart.
    detect_model_poll_s: float = Field(default=10.0, ge=0)
    # Event times up to this far ahead of the worker's clock are producer clock skew; later
    # ones are dead-lettered as event_time_in_future (docs/operations.md): one payment dated
    # 2099 would otherwise move its customer's windows past every genuine payment.
    detect_max_clock_skew_s: float = Field(default=300.0, ge=0)

    # Metrics: one port per long-running process; 0 disables the endpoint.
    metrics_host: str = "127.0.0.1"
    detect_metrics_port: int = 9464
    ledger_metrics_port: int = 9465
    anchor_metrics_port: int = 9466
    serve_metrics_port: int = 9467
    watch_metrics_port: int = 9468

    # --- derived paths -------------------------------------------------------------------
    @property
    def stack_state_path(self) -> Path:
        return self.home / STACK_STATE_FILE

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def ledger_key_path(self) -> Path:
        return self.ledger_key_file or self.home / "keys" / "ledger.key"

    @property
    def ledger_state_path(self) -> Path:
        if self.ledger_state_file is not None:
            return self.ledger_state_file
        if self.ledger_key is not None:
            return self.home / "keys" / "ledger.state.json"
        key = self.ledger_key_path
        return key.with_name(f"{key.stem}.state.json")

    def trusted_key_strings(self) -> list[str]:
        parts = self.trusted_keys.replace(",", "\n").splitlines()
        return [p.strip() for p in parts if p.strip()]

    # --- endpoints that must be known --------------------------------------------------------
    def require_kafka(self) -> str:
        return _required(self.kafka_bootstrap, "Kafka bootstrap servers", "KAFKA_BOOTSTRAP")

    def require_clickhouse(self) -> str:
        """The ClickHouse URL, password included: for the store's connection only."""
        return _required(_secret(self.clickhouse_url), "ClickHouse URL", "CLICKHOUSE_URL")

    def all_topics(self) -> list[str]:
        """Every topic the product reads or writes."""
        return [
            self.topic_transactions,
            self.topic_supply_chain,
            self.topic_decisions,
            self.topic_dead_letter,
            self.topic_labels,
        ]

    def require_rpc(self) -> tuple[str, int]:
        """The JSON-RPC URL (secret: for the client only) and the chain id it must serve
        (Sepolia's unless set)."""
        url = _required(_secret(self.rpc_url), "EVM JSON-RPC URL", "RPC_URL")
        return url, SEPOLIA_CHAIN_ID if self.chain_id is None else self.chain_id

    def confirmations(self, chain_id: int) -> int:
        if self.anchor_confirmations is not None:
            return self.anchor_confirmations
        return SEPOLIA_CONFIRMATIONS if chain_id == SEPOLIA_CHAIN_ID else 1

    def anchor_private_key(self) -> str:
        """The anchor account's private key, from the environment or a file. Never logged."""
        if self.anchor_key is not None:
            return self.anchor_key.get_secret_value().strip()
        if self.anchor_key_file is not None:
            try:
                return self.anchor_key_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise AnchorKeyError(
                    f"cannot read anchor key file {self.anchor_key_file}: {exc}"
                ) from exc
        raise AnchorKeyError(
            "no anchor signing key: set ATTESTREAM_ANCHOR_KEY or ATTESTREAM_ANCHOR_KEY_FILE"
        )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _required(value: str | None, what: str, env: str) -> str:
    if not value:
        raise ConfigError(
            f"no {what} configured: set ATTESTREAM_{env} or start the local stack with "
            "`attestream stack up`"
        )
    return value


def read_stack_state(home: Path) -> dict[str, Any] | None:
    path = home / STACK_STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"stack state file {path} is unreadable: {exc}") from exc


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with unset endpoints taken from the local stack."""
    settings = _validated(**overrides)
    state = read_stack_state(settings.home)
    if not state:
        return settings
    endpoints = state.get("endpoints", {})
    fill: dict[str, Any] = {}
    for field in ("kafka_bootstrap", "clickhouse_url", "rpc_url", "chain_id", "anchor_key_file"):
        if getattr(settings, field) is None and endpoints.get(field) is not None:
            fill[field] = endpoints[field]
    # Re-validate through the constructor so values from JSON get their declared types.
    return _validated(**overrides, **fill) if fill else settings


def _validated(**values: Any) -> Settings:
    """Settings, or a ConfigError naming each bad setting without echoing its value (a value
    may be a secret)."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"ATTESTREAM_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
