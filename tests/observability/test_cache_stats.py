"""`cacheStats`: admins only; hit ratio over the window, keys cached, snapshot version and age."""

from __future__ import annotations

import pytest

from graphql_api.observability.hit_ratio import HitRatioWindow
from tests.api.conftest import Api
from tests.observability.conftest import RECOMMENDATIONS

CACHE_STATS = """
query Stats($minutes: Int! = 5) {
  cacheStats(windowMinutes: $minutes) {
    backend hitRatio hits misses windowSeconds keysCached keysCachedExact breakerState snapshotVersion snapshotAgeSeconds
  }
}
"""


@pytest.mark.parametrize(
    ("who", "code"),
    [(None, "UNAUTHENTICATED"), ("garbage", "UNAUTHENTICATED"), ("alice", "FORBIDDEN")],
)
async def test_only_an_admin_token_may_read_cache_stats(api: Api, who: str | None, code: str) -> None:
    token = None if who is None else "not-a-jwt" if who == "garbage" else api.token(who)
    body = await api.gql(CACHE_STATS, token=token)
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == [code]
    assert "hit" not in body["errors"][0]["message"].lower()


async def test_an_admin_reads_the_figures_of_this_process(api: Api) -> None:
    admin = api.token("root", admin=True)
    empty = (await api.gql(CACHE_STATS, token=admin))["data"]["cacheStats"]
    assert empty["hitRatio"] is None and (empty["hits"], empty["misses"]) == (0, 0)

    for _ in range(3):
        await api.gql(RECOMMENDATIONS, {"id": "alice"})  # one miss, then two hits
    await api.gql(RECOMMENDATIONS, {"id": "bob"})  # a miss

    stats = (await api.gql(CACHE_STATS, token=admin))["data"]["cacheStats"]
    snapshot = api.container.model.current
    assert stats["backend"] == "MEMORY"
    assert (stats["hits"], stats["misses"], stats["hitRatio"]) == (2, 2, 0.5)
    assert stats["keysCached"] == 2 and stats["keysCachedExact"] is True
    assert stats["breakerState"] is None  # the in-process cache has no breaker
    assert stats["snapshotVersion"] == snapshot.version
    assert 0 <= stats["snapshotAgeSeconds"] < 600
    assert 0 <= stats["windowSeconds"] <= 300


async def test_the_window_is_bounded(api: Api) -> None:
    admin = api.token("root", admin=True)
    for minutes in (0, 16):
        body = await api.gql(CACHE_STATS, {"minutes": minutes}, token=admin)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_the_window_counts_only_lookups_since_its_oldest_sample_in_range() -> None:
    now = [0.0]
    window = HitRatioWindow(sample_every_seconds=5, clock=lambda: now[0])
    for second, (hits, misses) in enumerate([(0, 0), (10, 10), (40, 20), (100, 20)]):
        now[0] = second * 60.0
        window.sample(hits, misses)
    now[0] = 181.0
    last_two_minutes = window.over(120, 130, 30)  # the oldest sample within 120 s is at 120 s: (40, 20)
    assert (last_two_minutes.hits, last_two_minutes.misses, last_two_minutes.seconds) == (90, 10, 61.0)
    assert last_two_minutes.ratio == 0.9
    everything = window.over(900, 130, 30)
    assert (everything.hits, everything.misses, everything.ratio) == (130, 30, 130 / 160)
