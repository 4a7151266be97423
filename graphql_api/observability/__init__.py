"""Operations: Prometheus metrics, structured logs, request ids, optional tracing, job progress.

Kept out of the domain: the service only reports through `domain.service.ServiceObserver`
and its counters; everything that knows Prometheus, logging formats or OpenTelemetry
lives here. See docs/operations.md.
"""
