"""infra/grafana/bookrec.json: valid JSON whose every PromQL expression reads metrics the app exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Api

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "bookrec.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# A name followed by a selector or a range is a metric; functions are followed by "(".
METRIC_REFERENCE = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{\[])|\b(bookrec_[a-z0-9_]+)\b")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


async def exported_names(api: Api) -> set[str]:
    text = (await api.client.get("/metrics")).text
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


async def test_every_expression_reads_only_exported_metrics(api: Api) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = await exported_names(api)
    exprs = expressions(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        referenced = {name for match in METRIC_REFERENCE.finditer(expr) for name in match.groups() if name}
        assert referenced, expr
        assert referenced <= exported, (expr, referenced - exported)


def test_panels_have_unique_ids_a_datasource_variable_and_descriptions() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert [variable["name"] for variable in dashboard["templating"]["list"]] == ["datasource"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["description"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
