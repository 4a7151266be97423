"""`bookrec train` and `bookrec model list|use`: publishing models and rolling back, from the command line."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from adapters.dynamodb_store import open_dynamodb_stores
from adapters.model_store import LocalModelStore, open_model_store
from adapters.synthetic_data import generate
from domain.models import Rating
from graphql_api.cli import main
from graphql_api.settings import Settings
from tests.api.conftest import BOOKS, RATED_AT, TASTES
from tests.cli.test_warm_and_recommend import seeded  # noqa: F401  (a SQLite store of 300 synthetic users)


def published(model_uri: str) -> list[dict[str, object]]:
    return asyncio.run(LocalModelStore(Path(model_uri)).versions())


def test_train_publishes_a_model_the_list_shows(seeded: Path, model_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    [manifest] = published(model_uri)
    assert f"published model {manifest['version']} to {model_uri}" in out
    assert manifest["algorithm"] == "ease" and manifest["n_users"] == 300 and manifest["n_ratings"] > 0
    assert manifest["source"].startswith("sqlite:") and manifest["peak_memory_bytes"] > 0  # type: ignore[union-attr, operator]
    assert main(["model", "list"]) == 0
    assert capsys.readouterr().out.startswith(f"* {manifest['version']}")


def test_a_rollback_points_latest_at_an_older_version(
    seeded: Path, model_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train"]) == 0
    monkeypatch.setenv("MODEL_L2", "200")
    assert main(["train"]) == 0
    newer, older = published(model_uri)
    assert newer["latest"] and not older["latest"] and newer["version"] != older["version"]
    capsys.readouterr()

    assert main(["model", "use", str(older["version"])]) == 0
    assert [manifest["latest"] for manifest in published(model_uri)] == [False, True]
    capsys.readouterr()
    assert main(["model", "list", "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [(manifest["version"], manifest["latest"]) for manifest in listed] == [(newer["version"], False), (older["version"], True)]


def test_using_an_unknown_version_is_one_line_and_exit_2(seeded: Path, model_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train"]) == 0
    latest = published(model_uri)[0]["version"]
    capsys.readouterr()
    assert main(["model", "use", "0123456789abcdef"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0123456789abcdef" in err
    assert published(model_uri)[0]["version"] == latest and published(model_uri)[0]["latest"]


def test_train_on_an_empty_store_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "empty.db"))
    monkeypatch.delenv("DYNAMODB_TABLE", raising=False)
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert err == "bookrec train: error: the ratings store holds no rating to train on\n"


@pytest.mark.moto_server
def test_train_reads_dynamodb_by_scan_and_publishes_to_s3(
    dynamodb_settings: Settings, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    data = generate(400, 150, 5_000, seed=5)

    async def seed() -> None:
        async with open_dynamodb_stores(table=dynamodb_settings.dynamodb_table or "", region=dynamodb_settings.aws_region,
                                        endpoint_url=moto_server) as (ratings, catalog):
            await catalog.put_many(BOOKS)
            await ratings.put_many(Rating(user, book, stars, RATED_AT) for user, rated in TASTES.items() for book, stars in rated.items())
            await ratings.put_many(Rating(str(user), int(book), int(stars), RATED_AT)
                                   for user, book, stars in zip(data.user_ids, data.book_ids, data.ratings) if int(book) in
                                   {b.id for b in BOOKS})
        async with open_model_store(f"s3://{bucket}", region="us-east-1", endpoint_url=moto_server, cache_dir=tmp_path, keep=2) as store:
            await store.client.create_bucket(Bucket=bucket)

    asyncio.run(seed())
    for name, value in {"DYNAMODB_TABLE": dynamodb_settings.dynamodb_table, "DYNAMODB_ENDPOINT_URL": moto_server,
                        "AWS_REGION": dynamodb_settings.aws_region, "MODEL_S3_ENDPOINT_URL": moto_server,
                        "MODEL_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value or "")

    assert main(["train", "--out", f"s3://{bucket}/models"]) == 0
    assert f"to s3://{bucket}/models" in capsys.readouterr().out
    monkeypatch.setenv("MODEL_URI", f"s3://{bucket}/models")
    assert main(["model", "list", "--json"]) == 0
    [manifest] = orjson.loads(capsys.readouterr().out)
    assert manifest["latest"] and manifest["source"] == f"dynamodb:{dynamodb_settings.aws_region}/{dynamodb_settings.dynamodb_table}"
