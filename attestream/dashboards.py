"""The Grafana dashboards as code: `attestream.dashboard_panels` says what they show, this
module builds Grafana's JSON with grafana-foundation-sdk (a development dependency) and writes
it to deploy/grafana/dashboards/ (`make dashboards`, or `python -m attestream.dashboards`).

The generated files are checked in, so Grafana's provisioning (deploy/grafana/provisioning/)
reads them without Python; a unit test regenerates them and compares byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from attestream import dashboard_panels as spec

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"
CHART_DASHBOARDS_DIR = REPO_ROOT / "helm" / "attestream" / "dashboards"
# The datasource deploy/grafana/provisioning/datasources/attestream.yaml provisions.
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="attestream-prometheus")
PANEL_HEIGHT = 8
GREEN, RED = "green", "red"

AnyPanel = timeseries.Panel | stat.Panel | table.Panel


def _thresholds(panel: spec.Panel) -> gd.ThresholdsConfig:
    if panel.bad_below is not None:
        steps = [dm.Threshold(None, RED), dm.Threshold(panel.bad_below, GREEN)]
    elif panel.bad_above is not None:
        steps = [dm.Threshold(None, GREEN), dm.Threshold(panel.bad_above, RED)]
    else:
        steps = [dm.Threshold(None, GREEN)]
    return gd.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)


def _target(query: spec.Query, ref_id: str, kind: str) -> prometheus.Dataquery:
    target = (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend or "__auto")
        .ref_id(ref_id)
        .datasource(DATASOURCE)
    )
    if kind == "table":
        # One row per series, as it is now: the active model's digest, not its history.
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def _panel(panel: spec.Panel, panel_id: int) -> AnyPanel:
    built: AnyPanel
    if panel.kind == "stat":
        built = (
            stat.Panel()
            .reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]))
            .color_mode(cm.BigValueColorMode.BACKGROUND)
        )
    elif panel.kind == "table":
        built = table.Panel().show_header(True)
    else:
        built = timeseries.Panel().legend(
            gc.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        if panel.bad_above is not None or panel.bad_below is not None:
            built = built.thresholds_style(
                gc.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.LINE)
            )
    built = (
        built.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .height(PANEL_HEIGHT)
        .span(panel.width)
        .thresholds(_thresholds(panel))
    )
    for index, query in enumerate(panel.queries):
        built = built.with_target(_target(query, chr(ord("A") + index), panel.kind))
    return built


def build(board: spec.Dashboard) -> dm.Dashboard:
    builder = (
        gd.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["attestream"])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
    )
    for panel_id, panel in enumerate(board.panels, start=1):
        builder = builder.with_panel(_panel(panel, panel_id))
    return builder.build()


def render(board: spec.Dashboard) -> str:
    """The dashboard's JSON as Grafana reads it: keys sorted, so a regeneration is stable."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build(board)) + "\n"


def write_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for board in spec.DASHBOARDS:
        path = directory / f"{board.uid}.json"
        path.write_text(render(board), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    # The Helm chart carries its own copy: helm reads no file outside the chart's folder.
    for directory in (DASHBOARDS_DIR, CHART_DASHBOARDS_DIR):
        for written in write_dashboards(directory):
            print(written.relative_to(REPO_ROOT))
