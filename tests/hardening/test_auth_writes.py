"""Refused mutations write nothing, checked in the real stores: DynamoDB (moto's server) and Redis (a server of
this test's own). tests/api/test_auth.py holds the token matrix against counted embedded stores; this runs the
same bad tokens, and a token for another user, against what is actually stored, byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from adapters.dynamodb_store import dynamodb_client, open_dynamodb_stores
from adapters.redis_cache import build_redis_cache
from domain.models import Rating
from graphql_api.app import create_app
from graphql_api.auth import TokenAuthority
from graphql_api.bootstrap import Stores, open_container
from graphql_api.settings import Settings
from tests.api.conftest import BOOKS, RATED_AT, SECRET, TASTES, api_settings, publish_model
from tests.api.test_auth import BAD_TOKENS
from tests.redis_servers import RedisServerProcess

pytestmark = [pytest.mark.moto_server, pytest.mark.redis_server]

MUTATIONS = {
    "rateBook": 'mutation { rateBook(userId: "alice", bookId: "30", rating: 1) { rating { rating } } }',
    "invalidateRecommendations": 'mutation { invalidateRecommendations(userId: "alice") }',
    "refreshRecommendations": 'mutation { refreshRecommendations(userIds: ["alice", "bob"]) { id } }',
}
_tokens = TokenAuthority(SECRET)
REFUSALS = {
    "no token": (None, "UNAUTHENTICATED"),
    "expired": (f"Bearer {BAD_TOKENS['expired']}", "UNAUTHENTICATED"),
    "signed by another key": (f"Bearer {BAD_TOKENS['other key']}", "UNAUTHENTICATED"),
    "alg none": (f"Bearer {BAD_TOKENS['alg none']}", "UNAUTHENTICATED"),
    "tampered": (f"Bearer {BAD_TOKENS['tampered']}", "UNAUTHENTICATED"),
    "another user": (f"Bearer {_tokens.issue('bob')}", "FORBIDDEN"),
}


@dataclass
class Deployment:
    client: httpx.AsyncClient
    settings: Settings
    redis: RedisServerProcess

    async def table_items(self) -> list[dict]:
        """Every item of the table, sorted: what "nothing written" is compared on."""
        async with dynamodb_client(region=self.settings.aws_region, endpoint_url=self.settings.dynamodb_endpoint_url) as client:
            items, start = [], None
            while True:
                page = await client.scan(TableName=self.settings.dynamodb_table, **({"ExclusiveStartKey": start} if start else {}))
                items += page["Items"]
                if not (start := page.get("LastEvaluatedKey")):
                    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    def redis_contents(self) -> dict[bytes, tuple[bytes | None, int]]:
        """Every key with its serialized value and whether it expires (DUMP is byte-exact)."""
        with redis.Redis(host="127.0.0.1", port=self.redis.port) as client:
            return {key: (client.dump(key), client.pttl(key) > 0) for key in client.scan_iter(count=1000)}


@pytest.fixture
async def deployment(dynamodb_settings: Settings, redis_server: RedisServerProcess, tmp_path: Path) -> AsyncIterator[Deployment]:
    settings = api_settings(
        tmp_path, redis_url=redis_server.url, dynamodb_table=dynamodb_settings.dynamodb_table,
        dynamodb_endpoint_url=dynamodb_settings.dynamodb_endpoint_url, aws_region=dynamodb_settings.aws_region,
    )
    async with open_dynamodb_stores(
        table=settings.dynamodb_table or "", region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url
    ) as (ratings, catalog):
        await catalog.put_many(BOOKS)
        await ratings.put_many(Rating(user, book, stars, RATED_AT) for user, rated in TASTES.items() for book, stars in rated.items())
        await publish_model(settings, Stores(ratings, catalog))
        async with open_container(settings, stores=Stores(ratings, catalog), cache=build_redis_cache(settings), refresh_model=False) as container:
            app = create_app(container=container)
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
            ) as client:
                yield Deployment(client, settings, redis_server)


@pytest.mark.parametrize("mutation", list(MUTATIONS))
async def test_a_refused_mutation_writes_nothing_to_dynamodb_or_redis(deployment: Deployment, mutation: str) -> None:
    # Cached lists exist, so an invalidation or a refresh that slipped through would show in Redis.
    warm = await deployment.client.post("/graphql", json={"query": '{ users(ids: ["alice", "bob"]) { recommendations(limit: 1) { score } } }'})
    assert "errors" not in warm.json()
    table_before, redis_before = await deployment.table_items(), deployment.redis_contents()
    assert b"reco:alice" in redis_before

    for refusal, (authorization, code) in REFUSALS.items():
        headers = {"Authorization": authorization} if authorization else {}
        response = await deployment.client.post("/graphql", json={"query": MUTATIONS[mutation]}, headers=headers)
        body = response.json()
        assert (response.status_code, body["data"]) == (200, None), refusal
        assert [error["extensions"]["code"] for error in body["errors"]] == [code], refusal

    await asyncio.sleep(0.2)  # a refresh job, had one started, would be writing by now
    assert await deployment.table_items() == table_before
    assert deployment.redis_contents() == redis_before


async def test_the_same_mutations_with_the_right_token_do_write(deployment: Deployment) -> None:
    """The control: the checks above can see a write."""
    table_before = await deployment.table_items()
    admin = {"Authorization": f"Bearer {_tokens.issue('root', admin=True)}"}
    alice = {"Authorization": f"Bearer {_tokens.issue('alice')}"}
    rated = await deployment.client.post("/graphql", json={"query": MUTATIONS["rateBook"]}, headers=alice)
    assert rated.json() == {"data": {"rateBook": {"rating": {"rating": 1}}}}
    assert len(await deployment.table_items()) == len(table_before) + 1
    await deployment.client.post("/graphql", json={"query": '{ user(id: "alice") { recommendations(limit: 1) { score } } }'})
    assert b"reco:alice" in deployment.redis_contents()
    invalidated = await deployment.client.post("/graphql", json={"query": MUTATIONS["invalidateRecommendations"]}, headers=admin)
    assert invalidated.json() == {"data": {"invalidateRecommendations": True}}
    assert b"reco:alice" not in deployment.redis_contents()
