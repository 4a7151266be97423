"""Optional OpenTelemetry tracing: a span per request and per batch (cache read, recommender, catalog), never per field.

Off unless OTEL_ENABLED=true. The packages are an optional extra (`pip install
bookrec[otel]`): without them tracing stays off with one warning, and every hook
here is a boolean test. The exporter follows the standard environment
(OTEL_TRACES_EXPORTER=otlp|console|none, OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_SERVICE_NAME ...); a tracer provider someone configured already (e.g.
`opentelemetry-instrument`) is used as it is.

Batch spans are recorded when the batch has finished, with its measured start and
end: the hooks report a duration (see `domain.service.ServiceObserver`), and a
span opened across an `await` would cost a context switch per batch. They become
children of the request span because DataLoader batches run in tasks that copy
the request's context.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

if TYPE_CHECKING:
    from graphql_api.settings import Settings

logger = logging.getLogger("bookrec.tracing")

INSTRUMENTATION_NAME = "bookrec"


class RequestSpan:
    """An open request span and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: object) -> None:
        self.span = span
        self.token = token


class Tracing:
    def __init__(self, tracer: Any | None = None) -> None:
        self._tracer = tracer
        self.enabled = tracer is not None

    def start_request(self, scope: Scope) -> RequestSpan:
        """A server span for one HTTP request, continuing the caller's trace (W3C traceparent) if it sent one."""
        from opentelemetry import context, propagate, trace

        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        span = self._tracer.start_span(  # type: ignore[union-attr]
            f"{scope['method']} {scope['path']}",
            context=propagate.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        return RequestSpan(span, context.attach(trace.set_span_in_context(span)))

    def end_request(self, request: RequestSpan, *, status: int, operation: str, outcome: str, request_id: str) -> None:
        from opentelemetry import context, trace

        span = request.span
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("graphql.operation.name", operation)
        span.set_attribute("bookrec.outcome", outcome)
        span.set_attribute("bookrec.request_id", request_id)
        if status >= 500:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end()
        context.detach(request.token)

    def record_span(self, name: str, seconds: float, attributes: dict[str, Any]) -> None:
        """A finished batch as a child of the current span, timed by its caller."""
        end = time.time_ns()
        span = self._tracer.start_span(name, start_time=end - int(seconds * 1e9), attributes=attributes)  # type: ignore[union-attr]
        span.end(end_time=end)


NO_TRACING = Tracing()


def tracing_from_settings(settings: Settings) -> Tracing:
    """Tracing as OTEL_ENABLED and the standard OTEL_* variables ask, or NO_TRACING."""
    if not settings.otel_enabled:
        return NO_TRACING
    try:
        from opentelemetry import trace
    except ImportError:
        logger.warning("OTEL_ENABLED is set but opentelemetry is not installed (pip install 'bookrec[otel]'); tracing is off")
        return NO_TRACING
    if _provider_is_unset(trace.get_tracer_provider()):
        provider = _sdk_provider()
        if provider is None:
            return NO_TRACING
        trace.set_tracer_provider(provider)
    return Tracing(trace.get_tracer(INSTRUMENTATION_NAME))


def _provider_is_unset(provider: Any) -> bool:
    from opentelemetry import trace

    return isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _sdk_provider() -> Any | None:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        logger.warning("OTEL_ENABLED is set but opentelemetry-sdk is not installed (pip install 'bookrec[otel]'); tracing is off")
        return None
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, but attributes passed to it win.
    default_name = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": INSTRUMENTATION_NAME}
    provider = TracerProvider(resource=Resource.create(default_name))
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter_name == "none":
        return provider
    if exporter_name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        return provider
    if exporter_name != "otlp":
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none); tracing is off", exporter_name)
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.warning(
            "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http; tracing is off "
            "(or set OTEL_TRACES_EXPORTER=console)"
        )
        return None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
