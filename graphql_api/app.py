"""The ASGI application: GraphQL at /graphql, liveness at /healthz, readiness at /readyz, Prometheus at /metrics.

`create_app` is a factory (`uvicorn graphql_api.app:create_app --factory`): each
worker process builds its own app, and its lifespan opens the stores, cache and
item model. Tests pass a ready container instead, which is used as it is.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from graphql_api.auth import DEV_JWT_SECRET, TokenAuthority, jwt_secret
from graphql_api.bootstrap import Container, open_container
from graphql_api.context import RequestContext
from graphql_api.errors import (
    BAD_REQUEST,
    INTERNAL_MESSAGE,
    INTERNAL_SERVER_ERROR,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    format_error,
)
from graphql_api.http_cache import PRIVATE, CacheControlMixin, public_max_age
from graphql_api.jobs import RefreshJobs
from graphql_api.limits import (
    MutationRateLimiter,
    PayloadTooLarge,
    QueryLimits,
    build_rate_limiter,
    check_declared_size,
    limit_body,
)
from graphql_api.loaders import Loaders
from graphql_api.observability.logging_config import configure_logging
from graphql_api.observability.middleware import OperationNameMixin, RequestObservation, note_error_codes, operation_name
from graphql_api.observability.requests import current_request
from graphql_api.observability.runtime import GRAPHQL_PATH, Observability
from graphql_api.observability.tracing import tracing_from_settings
from graphql_api.persisted_queries import PersistedQueries, PersistedQueriesMixin, build_persisted_queries
from graphql_api.read_plans import ReadPlans, ReadPlansMixin, is_json_post, read_body, replay
from graphql_api.schema import build_schema
from graphql_api.settings import Settings, load_settings
from graphql_api.web import graphiql_response, web_routes

logger = logging.getLogger("bookrec.app")

# Stores without which no request can be answered; readiness fails when one of them does not answer.
REQUIRED_STORES = ("ratings", "catalog")


class Runtime:
    """What the app serves from: the container (set once the lifespan has opened it), the job registry, the metrics."""

    def __init__(self, container: Container | None, observability: Observability) -> None:
        self.container = container
        self.jobs = RefreshJobs()
        self.observability = observability

    def require_container(self) -> Container:
        if self.container is None:
            raise RuntimeError("the service is not started: the app's lifespan has not opened its container")
        return self.container


_JSON_KINDS = {str: "a string", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}


def json_response(data: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, headers=headers, media_type="application/json")


class GraphQLView(ReadPlansMixin, OperationNameMixin, PersistedQueriesMixin, CacheControlMixin, GraphQL[RequestContext, None]):
    """Strawberry's ASGI view with fresh loaders per request, coded errors, and orjson both ways; the hot
    recommendation reads are answered by their read plans (graphql_api.read_plans) once admitted."""

    def __init__(
        self, runtime: Runtime, tokens: TokenAuthority, *, introspection: bool, graphiql: bool,
        persisted_queries: PersistedQueries, public_max_age: int,
        limits: QueryLimits, max_request_bytes: int, rate_limiter: MutationRateLimiter | None,
    ) -> None:
        super().__init__(
            build_schema(introspection=introspection, limits=limits), graphql_ide="graphiql" if graphiql else None,
            persisted_queries=persisted_queries, public_max_age=public_max_age,
        )
        self._runtime = runtime
        self._tokens = tokens
        self._max_request_bytes = max_request_bytes
        self._rate_limiter = rate_limiter
        self.read_plans = ReadPlans()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve HTTP; a request refused or failing outside execution still gets a coded JSON error, not plain text."""
        try:
            check_declared_size(scope["headers"], scope["query_string"], self._max_request_bytes)
            receive = limit_body(receive, self._max_request_bytes)
            response = None
            if is_json_post(scope):
                body = await read_body(receive)
                response = await self._planned_response(body)
                receive = replay(body, receive)
            if response is None:
                response = await self.run(Request(scope, receive))
        except PayloadTooLarge as error:
            response = json_response({"errors": [{"message": str(error), "extensions": {"code": PAYLOAD_TOO_LARGE}}]}, 413)
        except HTTPException as error:
            response = self._refusal(error)
        except Exception:
            logger.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            failure = {"message": INTERNAL_MESSAGE, "extensions": {"code": INTERNAL_SERVER_ERROR}}
            response = json_response({"errors": [failure]}, 500)
        await response(scope, receive, send)

    async def _planned_response(self, body: bytes) -> Response | None:
        """The response of an admitted read plan, or None to run the request through Strawberry."""
        planned = self.read_plans.match(body)
        if planned is None:
            return None
        container = self._runtime.require_container()
        try:
            payload = await self.read_plans.answer(
                planned, container.service, self._runtime.observability.catalog(container.catalog)
            )
        except Exception:  # Fallback, or a store failing: Strawberry runs it again and reports any error with its code
            return None
        if (record := current_request.get()) is not None:
            record.note_operation(operation_name(planned))
        return Response(payload, media_type="application/json", headers={"cache-control": PRIVATE})

    async def get_context(self, request: Request, response: Any) -> RequestContext:  # type: ignore[override]
        container = self._runtime.require_container()
        return RequestContext(
            service=container.service,
            loaders=Loaders(container.service, self._runtime.observability.catalog(container.catalog)),
            jobs=self._runtime.jobs,
            tokens=self._tokens,
            authorization=request.headers.get("authorization"),
            client_address=request.client.host if request.client else "",
            rate_limiter=self._rate_limiter,
            response=response,
            observability=self._runtime.observability,
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_response(request)

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [format_error(error) for error in result.errors]
            note_error_codes(response["errors"])
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    async def parse_http_body(self, request: Any) -> Any:
        data = await super().parse_http_body(request)
        # Strawberry checks the type of `query`, `variables` and `extensions` but not this one; every
        # layer after it (logging, metrics, persisted queries) may then rely on a name being a string.
        if not isinstance(data, list) and not isinstance(data.operation_name, (str, type(None))):
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
        return data

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        decoded = orjson.loads(data)
        # Strawberry reads `.get` of whatever decodes: a bare number, string or null would be a 500.
        if not isinstance(decoded, (dict, list)):
            raise HTTPException(400, f"expected a JSON object, got {_JSON_KINDS.get(type(decoded), 'another value')}")
        return decoded

    @staticmethod
    def _refusal(error: HTTPException) -> Response:
        headers: dict[str, str] = {}
        status_code = error.status_code
        if isinstance(error.__cause__, InvalidOperationTypeError):
            # A mutation over GET: a link or a prefetch must never change data.
            status_code, headers["Allow"] = 405, "POST"
        elif status_code == 405:
            headers["Allow"] = "GET, POST"
        code = NOT_FOUND if status_code == 404 else BAD_REQUEST
        return json_response({"errors": [{"message": error.reason, "extensions": {"code": code}}]}, status_code, headers)


class App(Starlette):
    """Starlette, with requests for exactly /graphql sent straight to the GraphQL view under the app's own middleware.

    Why: on a cache hit, the way through Starlette's error and exception middleware and
    its router cost about a sixth of the request's CPU, and none of it does anything
    for this endpoint: the view answers every error with a coded response itself, and
    the observation middleware catches whatever escapes. Every other path (and
    /graphql/ with its redirect) goes through Starlette as usual.
    """

    def __init__(self, *, graphql: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._graphql_endpoint = graphql
        self._graphql_stack: ASGIApp | None = None

    def build_graphql_stack(self) -> ASGIApp:
        """The app's own middleware around the view, built from `user_middleware` at the first request, as
        Starlette builds its stack, so both always wrap the same middleware."""
        app = self._graphql_endpoint
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == GRAPHQL_PATH:
            scope["app"] = self
            if self._graphql_stack is None:
                self._graphql_stack = self.build_graphql_stack()
            await self._graphql_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


# Young collections every this many container allocations rather than CPython's 700: a 50-user read
# allocates over a thousand, so at 700 collections ran several times per request, each promoting the
# objects of requests in flight. Measured on the hot query: p99 11.0 -> 8.6-9.3 ms.
GC_YOUNG_THRESHOLD = 7_000


def tune_gc_for_serving(stack: contextlib.AsyncExitStack) -> None:
    """Set the cyclic GC up for a serving process, and put it back as it was when `stack` closes.

    What the process has built by now (modules, schema, books, model) lives as long as it
    does: frozen, full collections stop walking it. Measured under load: full collections
    of 50-60 ms twice a second before (they were the hot query's p99), 2-3 ms after.
    """
    gc.collect()
    gc.freeze()
    stack.callback(gc.unfreeze)  # so that an app stopped inside a longer-lived process (tests) leaks nothing
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    stack.callback(gc.set_threshold, *thresholds)


def create_app(settings: Settings | None = None, container: Container | None = None) -> Starlette:
    """The app; refuses (SettingsError) to be built outside DEBUG without AUTH_JWT_SECRET."""
    if settings is None:
        settings = container.settings if container is not None else load_settings()
    configure_logging(settings.log_level, human=settings.debug)
    observability = Observability(tracing_from_settings(settings))
    runtime = Runtime(container, observability)
    secret = jwt_secret(settings)
    if secret == DEV_JWT_SECRET:
        logger.warning("AUTH_JWT_SECRET is unset: tokens are signed with the public development secret (DEBUG=true only)")
    tokens = TokenAuthority(secret)
    persisted_queries = build_persisted_queries(settings)
    view = GraphQLView(
        runtime, tokens, introspection=settings.introspection_enabled, graphiql=settings.graphiql_enabled,
        persisted_queries=persisted_queries, public_max_age=public_max_age(settings),
        limits=QueryLimits.from_settings(settings), max_request_bytes=settings.max_request_bytes,
        rate_limiter=build_rate_limiter(settings),
    )

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if runtime.container is None:
            return json_response({"status": "not serving", "stores": {}}, 503)
        problems = await runtime.container.readiness()
        model = runtime.container.model_report()
        # The cache fails open: without it requests are slower, not wrong, so it degrades readiness but
        # does not fail it (a Redis outage must not take every task out of the load balancer at once).
        # Likewise the popularity fallback served before any model is trained: every task is in that state.
        ready = all(problems[name] is None for name in REQUIRED_STORES)
        whole = all(r is None for r in problems.values()) and model["kind"] == "trained"
        status = "unavailable" if not ready else "ready" if whole else "degraded"
        stores = {name: reason or "ok" for name, reason in problems.items()}
        return json_response({"status": status, "stores": stores, "model": model}, 200 if ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if runtime.container is None:
                runtime.container = await stack.enter_async_context(open_container(settings, warm_books=True))
                stack.callback(setattr, runtime, "container", None)
                tune_gc_for_serving(stack)
            stack.push_async_callback(runtime.jobs.close)
            stack.push_async_callback(persisted_queries.aclose)
            await stack.enter_async_context(observability.attached(runtime.container, runtime.jobs))
            yield

    # Outermost, so that every response (refusals and CORS preflights too) carries X-Request-ID and is counted.
    middleware = [Middleware(RequestObservation, observability=observability)]
    if origins := [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["Retry-After", "X-Request-ID"],  # so the SPA can honour a 429 and quote an id
            )
        )
    return App(
        graphql=view,
        debug=settings.debug,
        routes=[
            Route(GRAPHQL_PATH, view),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", observability.metrics_endpoint, methods=["GET"]),
            *web_routes(settings),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
