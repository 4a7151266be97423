"""How REDIS_* settings become a client: TLS, the AUTH password, fail-fast timeouts. No server needed."""

from __future__ import annotations

import ssl

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from adapters.redis_cache import RedisRecommendationCache, build_redis_cache, build_redis_client
from graphql_api.settings import load_settings


def test_rediss_builds_a_tls_client_that_verifies_the_server() -> None:
    client = build_redis_client("rediss://cache.example.com:6380/0", password=None, cluster=False, timeout_ms=50)

    assert client.connection_pool.connection_class is SSLConnection
    connection = client.connection_pool.make_connection()
    assert connection.ssl_context.cert_reqs == ssl.CERT_REQUIRED
    assert connection.ssl_context.check_hostname is True


def test_redis_scheme_is_plain_tcp() -> None:
    client = build_redis_client("redis://127.0.0.1:6379/0", password=None, cluster=False, timeout_ms=50)

    assert client.connection_pool.connection_class is Connection


@pytest.mark.parametrize(
    ("url", "password", "expected"),
    [
        ("rediss://cache.example.com:6380/0", "from-secrets-manager", "from-secrets-manager"),
        ("rediss://:in-the-url@cache.example.com:6380/0", "from-secrets-manager", "in-the-url"),
        ("redis://127.0.0.1:6379/0", None, None),
    ],
)
def test_redis_password_applies_only_when_the_url_has_none(url: str, password: str | None, expected: str | None) -> None:
    client = build_redis_client(url, password=password, cluster=False, timeout_ms=50)

    assert client.connection_pool.connection_kwargs.get("password") == expected


def test_calls_time_out_in_tens_of_milliseconds_and_retry_at_most_once_at_once() -> None:
    client = build_redis_client("redis://127.0.0.1:6379/0", password=None, cluster=False, timeout_ms=50)
    kwargs = client.connection_pool.connection_kwargs

    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.05
    # One immediate retry, of a ConnectionError only (a socket a restarted server closed): never a timeout.
    assert kwargs["retry"] == Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))


def test_cluster_mode_builds_a_cluster_client_with_tls_password_and_no_retries() -> None:
    client = build_redis_client("rediss://cache.example.com:6380", password="secret", cluster=True, timeout_ms=30)

    assert isinstance(client, RedisCluster)
    assert client.connection_kwargs["connection_class"] is SSLConnection
    assert client.connection_kwargs["ssl_cert_reqs"] == "required"
    assert client.connection_kwargs["password"] == "secret"
    assert client.connection_kwargs["socket_timeout"] == 0.03
    assert client.retry.get_retries() == 0


def test_the_factory_reads_the_settings() -> None:
    settings = load_settings(
        redis_url="rediss://cache.example.com:6380/0", redis_password="secret", redis_timeout_ms=40,
        cache_ttl_seconds=60, cache_lease_ms=500,
    )
    cache = build_redis_cache(settings)

    assert isinstance(cache, RedisRecommendationCache)
    assert isinstance(cache.client, Redis)
    kwargs = cache.client.connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["socket_timeout"]) == ("secret", 0.04)
    assert isinstance(build_redis_cache(load_settings(redis_url="redis://h:1", redis_cluster=True)).client, RedisCluster)


def test_the_factory_needs_a_url() -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        build_redis_cache(load_settings())
