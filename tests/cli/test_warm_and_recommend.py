"""`bookrec warm` and `bookrec recommend`: the service's batch paths from the command line."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from adapters.cache_codec import decode
from adapters.goodbooks_csv import write_books, write_ratings
from adapters.synthetic_data import generate
from graphql_api.app import create_app
from graphql_api.cli import main
from graphql_api.settings import load_settings
from tests.redis_servers import RedisServerProcess

USERS = 300


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small synthetic data set imported through `bookrec import` into a SQLite file of the test's own."""
    data = generate(USERS, 200, 6_000, seed=3)
    write_books(tmp_path / "books.csv", data.books)
    write_ratings(tmp_path / "ratings.csv", data.user_ids, data.book_ids, data.ratings)
    for name in ("REDIS_URL", "DYNAMODB_TABLE", "DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "bookrec.db"))
    monkeypatch.setenv("MODEL_REFRESH_SECONDS", "0")
    assert main(["import", "--books", str(tmp_path / "books.csv"), "--ratings", str(tmp_path / "ratings.csv")]) == 0
    return tmp_path


def cached_users(url: str) -> set[str]:
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match="reco:*", count=1000))
        values = client.mget(keys) if keys else []
    users = [key.decode().removeprefix("reco:") for key in keys]
    assert all(decode(value, user) is not None for value, user in zip(values, users)), "a readable envelope each"
    return set(users)


@pytest.mark.redis_server
def test_warm_caches_every_user(seeded: Path, redis_server: RedisServerProcess, monkeypatch, capsys) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["warm", "--batch-size", "64"]) == 0
    assert f"warmed {USERS} of {USERS} users" in capsys.readouterr().out
    assert cached_users(redis_server.url) == {str(user) for user in range(1, USERS + 1)}


@pytest.mark.redis_server
def test_segments_split_the_users_without_overlap(seeded: Path, redis_server: RedisServerProcess, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    seen: set[str] = set()
    for segment in range(3):
        assert main(["warm", "--segment", str(segment), "--segments", "3"]) == 0
        now = cached_users(redis_server.url)
        added = now - seen
        assert added and all(zlib.crc32(user.encode()) % 3 == segment for user in added)
        seen = now
    assert len(seen) == USERS


@pytest.mark.parametrize("arguments", [["--segment", "3", "--segments", "3"], ["--segments", "0"], ["--batch-size", "0"]])
def test_warm_rejects_bad_arguments_in_one_line(seeded: Path, arguments: list[str], capsys) -> None:
    assert main(["warm", *arguments]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_batch_command_prints_what_the_api_serves(seeded: Path, capsys) -> None:
    users = ["1", "2", "150", "299", "nobody"]
    (seeded / "users.txt").write_text("\n".join(users) + "\n")
    assert main(["recommend", "--users-file", str(seeded / "users.txt"), "--limit", "5", "--json"]) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    from_cli = {line["user_id"]: [(item["book_id"], item["score"], item["source"]) for item in line["items"]] for line in lines}

    async def from_api() -> dict[str, list[tuple[int, float, str]]]:
        app = create_app(load_settings(debug=True))
        query = "query($ids: [ID!]!) { users(ids: $ids) { id recommendations(limit: 5) { score source book { id } } } }"
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
        ) as client:
            answer = (await client.post("/graphql", json={"query": query, "variables": {"ids": users}})).json()
        return {
            user["id"]: [(int(item["book"]["id"]), item["score"], item["source"]) for item in user["recommendations"]]
            for user in answer["data"]["users"]
        }

    assert list(from_cli) == users
    assert from_cli == asyncio.run(from_api())
    assert all(len(items) == 5 for items in from_cli.values())
    assert {source for _, _, source in from_cli["nobody"]} == {"POPULAR"}


def test_one_user_as_json_has_titles(seeded: Path, capsys) -> None:
    assert main(["recommend", "7", "--limit", "3", "--json"]) == 0
    items = orjson.loads(capsys.readouterr().out)
    assert len(items) == 3
    assert all(set(item) == {"book_id", "title", "score", "source"} and item["title"] for item in items)


@pytest.mark.parametrize(
    "arguments",
    [["--users-file", "/no/such/file", "--json"], ["--users-file", "users.txt"], ["7", "--limit", "0"]],
)
def test_recommend_rejects_bad_arguments_in_one_line(seeded: Path, arguments: list[str], capsys, monkeypatch) -> None:
    monkeypatch.chdir(seeded)
    (seeded / "users.txt").write_text("1\n")
    assert main(["recommend", *arguments]) == 2
    assert capsys.readouterr().err.count("\n") == 1
