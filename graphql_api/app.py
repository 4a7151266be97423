"""The ASGI application: GraphQL at /graphql, liveness at /healthz, readiness at /readyz.

`create_app` is a factory (`uvicorn graphql_api.app:create_app --factory`): each
worker process builds its own app, and its lifespan opens the stores, cache and
model snapshot. Tests pass a ready container instead, which is used as it is.
"""

from __future__ import annotations

import contextlib
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
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from graphql_api.auth import DEV_JWT_SECRET, TokenAuthority, jwt_secret
from graphql_api.bootstrap import Container, open_container
from graphql_api.context import RequestContext
from graphql_api.errors import BAD_REQUEST, INTERNAL_MESSAGE, INTERNAL_SERVER_ERROR, NOT_FOUND, format_error
from graphql_api.http_cache import CacheControlMixin, public_max_age
from graphql_api.jobs import RefreshJobs
from graphql_api.loaders import Loaders
from graphql_api.persisted_queries import PersistedQueries, PersistedQueriesMixin, build_persisted_queries
from graphql_api.schema import build_schema
from graphql_api.settings import Settings, load_settings
from graphql_api.web import graphiql_response, web_routes

logger = logging.getLogger("bookrec.app")

# Stores without which no request can be answered; readiness fails when one of them does not answer.
REQUIRED_STORES = ("ratings", "catalog")


class Runtime:
    """What the app serves from: the container (set once the lifespan has opened it) and the job registry."""

    def __init__(self, container: Container | None) -> None:
        self.container = container
        self.jobs = RefreshJobs()

    def require_container(self) -> Container:
        if self.container is None:
            raise RuntimeError("the service is not started: the app's lifespan has not opened its container")
        return self.container


def json_response(data: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, headers=headers, media_type="application/json")


class GraphQLView(PersistedQueriesMixin, CacheControlMixin, GraphQL[RequestContext, None]):
    """Strawberry's ASGI view with fresh loaders per request, coded errors, and orjson both ways."""

    def __init__(
        self, runtime: Runtime, tokens: TokenAuthority, *, debug: bool, graphiql: bool,
        persisted_queries: PersistedQueries, public_max_age: int,
    ) -> None:
        super().__init__(
            build_schema(introspection=debug), graphql_ide="graphiql" if graphiql else None,
            persisted_queries=persisted_queries, public_max_age=public_max_age,
        )
        self._runtime = runtime
        self._tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve HTTP; a request refused or failing outside execution still gets a coded JSON error, not plain text."""
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as error:
            response = self._refusal(error)
        except Exception:
            logger.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            failure = {"message": INTERNAL_MESSAGE, "extensions": {"code": INTERNAL_SERVER_ERROR}}
            response = json_response({"errors": [failure]}, 500)
        await response(scope, receive, send)

    async def get_context(self, request: Request, response: Any) -> RequestContext:  # type: ignore[override]
        container = self._runtime.require_container()
        return RequestContext(
            service=container.service,
            loaders=Loaders(container.service, container.catalog),
            jobs=self._runtime.jobs,
            tokens=self._tokens,
            authorization=request.headers.get("authorization"),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_response(request)

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [format_error(error) for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

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


def create_app(settings: Settings | None = None, container: Container | None = None) -> Starlette:
    """The app; refuses (SettingsError) to be built outside DEBUG without AUTH_JWT_SECRET."""
    if settings is None:
        settings = container.settings if container is not None else load_settings()
    runtime = Runtime(container)
    secret = jwt_secret(settings)
    if secret == DEV_JWT_SECRET:
        logger.warning("AUTH_JWT_SECRET is unset: tokens are signed with the public development secret (DEBUG=true only)")
    tokens = TokenAuthority(secret)
    persisted_queries = build_persisted_queries(settings)
    view = GraphQLView(
        runtime, tokens, debug=settings.debug, graphiql=settings.graphiql_enabled,
        persisted_queries=persisted_queries, public_max_age=public_max_age(settings),
    )

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if runtime.container is None:
            return json_response({"status": "not serving", "stores": {}}, 503)
        problems = await runtime.container.readiness()
        # The cache fails open: without it requests are slower, not wrong, so it degrades readiness but
        # does not fail it (a Redis outage must not take every task out of the load balancer at once).
        ready = all(problems[name] is None for name in REQUIRED_STORES)
        status = "unavailable" if not ready else "ready" if all(r is None for r in problems.values()) else "degraded"
        stores = {name: reason or "ok" for name, reason in problems.items()}
        return json_response({"status": status, "stores": stores}, 200 if ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if runtime.container is None:
                runtime.container = await stack.enter_async_context(open_container(settings))
                stack.callback(setattr, runtime, "container", None)
            stack.push_async_callback(runtime.jobs.close)
            stack.push_async_callback(persisted_queries.aclose)
            yield

    middleware = []
    if origins := [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    return Starlette(
        debug=settings.debug,
        routes=[
            Route("/graphql", view),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *web_routes(settings),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
