"""Every dashboard panel's query and every alert rule, evaluated by a running Prometheus.

`attestream stack queries` prints what each query returns right now (a value, a number of
series, or nothing), so an operator sees at a glance which panels would be empty and which
alerts fire; the monitoring integration test asserts on the same evaluation
(docs/operations.md, "Prometheus and Grafana").
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestcore.errors import ServiceUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"
# Grafana replaces $__rate_interval by a few scrape intervals; an instant query needs a value.
DEFAULT_RATE_WINDOW = "1m"
HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Query:
    source: str  # "panel" or "alert"
    name: str  # "<dashboard>: <panel title>" or the alert's name
    expr: str


@dataclass(frozen=True)
class Evaluation:
    query: Query
    ok: bool  # Prometheus parsed and ran it
    series: int
    value: float | None  # the single series' value, when there is exactly one
    error: str = ""
    state: str = ""  # an alert's state: inactive, pending or firing

    def summary(self) -> str:
        if not self.ok:
            return f"error: {self.error}"
        if self.series == 0:
            return "no data"
        if self.series == 1 and self.value is not None:
            return f"{self.value:g}"
        return f"{self.series} series"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.query.source,
            "name": self.query.name,
            "expr": self.query.expr,
            "ok": self.ok,
            "series": self.series,
            "value": self.value,
            "error": self.error,
            "state": self.state,
            "summary": self.summary(),
        }


def panel_queries(board_json: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a generated dashboard's JSON."""
    board = json.loads(board_json)
    return [
        (str(panel["title"]), str(target["expr"]))
        for panel in board.get("panels", [])
        for target in panel.get("targets", [])
    ]


def dashboard_queries(
    directory: Path = DASHBOARDS_DIR, rate_window: str = DEFAULT_RATE_WINDOW
) -> list[Query]:
    found = []
    for path in sorted(directory.glob("*.json")):
        for title, expr in panel_queries(path.read_text(encoding="utf-8")):
            expr = expr.replace("$__rate_interval", rate_window)
            found.append(Query("panel", f"{path.stem}: {title}", expr))
    return found


class Prometheus:
    """The few HTTP API calls the evaluation needs (`/api/v1/query`, `/rules`, `/alerts`)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> tuple[int, Any]:
        address = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(address, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why, in JSON
            return exc.code, json.loads(exc.read() or b"null")
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnavailableError("Prometheus", self.url, str(exc)) from exc

    def alert_rules(self) -> list[tuple[Query, str]]:
        """Every alerting rule Prometheus loaded, with its current state."""
        status, body = self.get("/api/v1/rules", type="alert")
        if status != 200:
            raise ServiceUnavailableError("Prometheus", self.url, f"rules answered {status}")
        return [
            (Query("alert", rule["name"], rule["query"]), str(rule.get("state", "")))
            for group in body["data"]["groups"]
            for rule in group["rules"]
        ]

    def firing(self, instances: Collection[str] | None = None) -> list[str]:
        """Names of the firing alerts. Given `instances` (host:port), only the alerts about one
        of them or about no single instance (rules that aggregate across processes)."""
        status, body = self.get("/api/v1/alerts")
        if status != 200:
            raise ServiceUnavailableError("Prometheus", self.url, f"alerts answered {status}")
        return [
            a["labels"]["alertname"]
            for a in body["data"]["alerts"]
            if a["state"] == "firing"
            and (instances is None or a["labels"].get("instance", "") in {"", *instances})
        ]

    def evaluate(self, query: Query, state: str = "") -> Evaluation:
        status, body = self.get("/api/v1/query", query=query.expr)
        if status != 200 or not body or body.get("status") != "success":
            error = (body or {}).get("error", f"HTTP {status}")
            return Evaluation(query, False, 0, None, error=str(error), state=state)
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return Evaluation(query, True, 1, float(result[1]), state=state)
        value = float(result[0]["value"][1]) if len(result) == 1 else None
        return Evaluation(query, True, len(result), value, state=state)


def evaluate_all(
    prometheus: Prometheus, rate_window: str = DEFAULT_RATE_WINDOW
) -> list[Evaluation]:
    """Every dashboard panel's query, then every alert rule's expression, evaluated now."""
    panels = [prometheus.evaluate(q) for q in dashboard_queries(rate_window=rate_window)]
    alerts = [prometheus.evaluate(q, state) for q, state in prometheus.alert_rules()]
    return panels + alerts
