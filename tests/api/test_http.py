"""The HTTP surface: health and readiness, GraphiQL, the start-up refusal without a secret, the lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any
from pathlib import Path

import httpx
import pytest
from strawberry.extensions.parser_cache import DEFAULT_MAXSIZE, _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache

from graphql_api.app import GC_YOUNG_THRESHOLD, create_app
from graphql_api.auth import DEV_JWT_SECRET, TokenAuthority
from graphql_api.bootstrap import Stores
from graphql_api.settings import Settings, SettingsError
from tests.api.conftest import Api, Failing, api_settings


async def test_healthz_answers_while_the_process_is_alive(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_store_answers(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "status": "ready",
        "stores": {"ratings": "ok", "catalog": "ok", "cache": "ok"},
        "model": {"version": api.container.model.current.version, "kind": "trained"},
    }


class TestAStoreThatDoesNotAnswer:
    @pytest.fixture
    def wrap_stores(self) -> Callable[[Stores], Stores]:
        return lambda stores: Stores(Failing(stores.ratings, ConnectionRefusedError("connection refused"), "ping"), stores.catalog)

    async def test_makes_readyz_503_with_the_reason(self, api: Api) -> None:
        response = await api.client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["stores"]["ratings"] == "ConnectionRefusedError: connection refused"
        assert body["stores"]["cache"] == "ok"
        assert (await api.client.get("/healthz")).status_code == 200


class TestACacheThatDoesNotAnswer:
    @pytest.fixture
    def make_cache(self, make_cache: Callable[[Settings], Any]) -> Callable[[Settings], Any]:
        return lambda settings: Failing(make_cache(settings), ConnectionRefusedError("connection refused"), "ping")

    async def test_degrades_readyz_without_failing_it(self, api: Api) -> None:
        response = await api.client.get("/readyz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        assert body["stores"] == {"ratings": "ok", "catalog": "ok", "cache": "ConnectionRefusedError: connection refused"}


async def test_graphiql_is_off_outside_debug(api: Api) -> None:
    response = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"] == {"code": "NOT_FOUND"}


async def test_the_app_opens_its_own_container_in_its_lifespan(tmp_path: Path, seeded_stores: Stores) -> None:
    settings = api_settings(tmp_path)
    app = create_app(settings)
    thresholds = gc.get_threshold()
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
    ) as client:
        assert (await client.get("/readyz")).status_code == 200
        body = (await client.post("/graphql", json={"query": '{ user(id: "alice") { recommendations(limit: 2) { source } } }'})).json()
        assert body == {"data": {"user": {"recommendations": [{"source": "COLLABORATIVE"}] * 2}}}
        # A serving process's long-lived objects are out of the cyclic GC's reach while it serves ...
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD != thresholds[0]
    # ... and handed back to it, with the thresholds as they were, when the app stops
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test") as client:
        stopped = await client.get("/readyz")  # after the lifespan: the container is closed
        assert (stopped.status_code, stopped.json()["status"]) == (503, "not serving")


def test_the_app_refuses_to_start_outside_debug_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="AUTH_JWT_SECRET must be set unless DEBUG=true"):
        create_app(api_settings(tmp_path, auth_jwt_secret=None))


async def test_in_debug_without_a_secret_the_public_dev_secret_signs_tokens_with_a_warning(
    tmp_path: Path, seeded_stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(tmp_path, debug=True, auth_jwt_secret=None)
    with caplog.at_level(logging.WARNING, logger="bookrec.app"):
        app = create_app(settings)
    assert "development secret" in caplog.text
    token = TokenAuthority(DEV_JWT_SECRET).issue("root", admin=True)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
    ) as client:
        body = (
            await client.post(
                "/graphql",
                json={"query": 'mutation { invalidateRecommendations(userId: "alice") }'},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        assert body == {"data": {"invalidateRecommendations": True}}
        graphiql = await client.get("/graphql", headers={"Accept": "text/html"})
        assert graphiql.status_code == 200
        assert "graphiql" in graphiql.text.lower()
        introspection = (await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})).json()
        assert introspection == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        suggestion = (await client.post("/graphql", json={"query": "{ popularBook { id } }"})).json()
        assert "Did you mean 'popularBooks'?" in suggestion["errors"][0]["message"]


async def test_graphiql_can_be_turned_on_outside_debug(tmp_path: Path, seeded_stores: Stores) -> None:
    app = create_app(api_settings(tmp_path, graphiql=True))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
    ) as client:
        assert (await client.get("/graphql", headers={"Accept": "text/html"})).status_code == 200


async def test_a_repeated_document_is_parsed_and_validated_once(api: Api) -> None:
    parse_cache, validate_cache = _get_parse_cache(DEFAULT_MAXSIZE), _get_validate_cache(DEFAULT_MAXSIZE)
    # A document read plans do not cover (graphql_api.read_plans): those repeat without any parse at all.
    query = '{ user(id: "erin") { ratings { rating } } } # %s' % id(api)
    await api.gql(query)
    parses, validations = parse_cache.cache_info(), validate_cache.cache_info()
    for _ in range(3):
        await api.gql(query)
    assert parse_cache.cache_info().misses == parses.misses
    assert parse_cache.cache_info().hits == parses.hits + 3
    assert validate_cache.cache_info().misses == validations.misses
    assert validate_cache.cache_info().hits == validations.hits + 3


async def test_a_failure_outside_execution_is_a_coded_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(api_settings(tmp_path))  # its lifespan never ran, so it has no container
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test") as client:
        with caplog.at_level(logging.ERROR, logger="bookrec.app"):
            response = await client.post("/graphql", json={"query": "{ popularBooks { id } }"})
    assert response.status_code == 500
    assert response.json() == {"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    assert "lifespan has not opened its container" in caplog.text
