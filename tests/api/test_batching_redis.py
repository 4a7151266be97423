"""The same batching on a real Redis: a query for many users is one MGET, counted by the server itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.redis_cache import build_redis_cache
from graphql_api.settings import Settings
from tests.api.conftest import Api, api_settings
from tests.api.test_batching import MIXED_QUERY
from tests.redis_servers import RedisServerProcess

pytestmark = pytest.mark.redis_server


@pytest.fixture
def settings(tmp_path: Path, redis_server: RedisServerProcess) -> Settings:
    return api_settings(tmp_path, redis_url=redis_server.url, redis_timeout_ms=1000)


@pytest.fixture
async def make_cache() -> AsyncIterator[Callable[[Settings], Any]]:
    made = []

    def redis_cache(settings: Settings) -> Any:
        made.append(build_redis_cache(settings))
        return made[-1]

    yield redis_cache
    for cache in made:
        await cache.aclose()


async def test_a_query_for_many_users_is_one_mget_cold_and_warm(api: Api, redis_server: RedisServerProcess) -> None:
    mgets = redis_server.command_calls("mget")
    cold = await api.gql(MIXED_QUERY)
    assert "errors" not in cold
    assert redis_server.command_calls("mget") == mgets + 1
    assert api.container.service.counters.recommender_batches == 1
    assert api.container.service.counters.fills == 7  # every list written, in one batched fill
    assert api.cache.calls["fill_many"] == 1

    warm = await api.gql(MIXED_QUERY)
    assert warm == cold
    assert redis_server.command_calls("mget") == mgets + 2
    assert api.container.service.counters.recommender_batches == 1
    with redis_server.client() as client:
        assert client.exists("reco:alice", "reco:nobody", "reco:someone-new") == 3
