"""OpenTelemetry (optional extra): off by default; when on, one span per request and per batch, never per field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graphql_api.observability.tracing import NO_TRACING, tracing_from_settings
from graphql_api.settings import Settings
from tests.api.conftest import Api, api_settings

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="the `otel` extra is not installed")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The process's tracer provider (set once: OpenTelemetry allows no second one), exporting to memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    return _EXPORTER


@pytest.fixture
def settings(tmp_path: Path, spans: InMemorySpanExporter) -> Settings:
    spans.clear()
    return api_settings(tmp_path, otel_enabled=True)


def test_tracing_is_off_unless_enabled(tmp_path: Path) -> None:
    assert tracing_from_settings(api_settings(tmp_path)) is NO_TRACING
    assert not NO_TRACING.enabled


async def test_a_request_is_one_span_with_one_child_per_batch(api: Api, spans: InMemorySpanExporter) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    query = "query Many { users(ids: [\"alice\", \"bob\", \"carol\"]) { recommendations(limit: 5) { score book { title authors } } } }"
    spans.clear()
    response = await api.client.post(
        "/graphql", json={"query": query}, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "X-Request-ID": "t-1"}
    )
    assert "errors" not in response.json()
    finished = {span.name: span for span in spans.get_finished_spans()}
    # Three users, fifteen recommendations, a dozen fields each: still four spans.
    assert sorted(finished) == ["POST /graphql", "cache get_many", "catalog batch", "recommender batch"]
    request = finished["POST /graphql"]
    assert format(request.context.trace_id, "032x") == trace_id  # the caller's trace continues
    assert request.kind is trace.SpanKind.SERVER
    attributes: dict[str, Any] = dict(request.attributes or {})
    assert attributes["graphql.operation.name"] == "Many"
    assert attributes["http.response.status_code"] == 200
    assert attributes["bookrec.request_id"] == "t-1"
    for name in ("cache get_many", "recommender batch", "catalog batch"):
        child = finished[name]
        assert child.parent is not None and child.parent.span_id == request.context.span_id, name
        assert request.start_time <= child.start_time <= child.end_time <= request.end_time, name
    assert dict(finished["cache get_many"].attributes or {}) == {"bookrec.users": 3, "bookrec.cache_hits": 0}
    assert dict(finished["recommender batch"].attributes or {}) == {"bookrec.users": 3}
