"""`bookrec create-table` and `bookrec import` against moto's DynamoDB server, configured by environment variables."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from adapters.dynamodb_store import dynamodb_client, open_dynamodb_stores
from adapters.goodbooks_csv import IMPORTED_RATED_AT
from domain.models import Book, Rating
from graphql_api.cli import main
from graphql_api.settings import Settings, load_settings

pytestmark = pytest.mark.moto_server

BOOKS_CSV = """book_id,authors,original_publication_year,title,average_rating,ratings_count,image_url
1,Suzanne Collins,2008.0,The Hunger Games,4.34,4780653,https://images.gr-assets.com/books/1447303603m/2767052.jpg
2,"J.K. Rowling, Mary GrandPré",1997.0,"Harry Potter and the Sorcerer's Stone (Harry Potter, #1)",4.44,4602479,
3,Homer,-720.0,The Odyssey,3.73,670326,
"""
RATINGS_CSV = """user_id,book_id,rating
58,1,4
58,2,5
314,3,2
58,1,1
314,999,5
"""  # 58 rates book 1 twice (the last row wins); book 999 is not in the catalog (reported, skipped)


def use_table(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE", settings.dynamodb_table or "")
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", settings.dynamodb_endpoint_url or "")
    monkeypatch.setenv("AWS_REGION", settings.aws_region)


def contents(settings: Settings) -> tuple[dict[int, Book], dict[str, list[Rating]], int]:
    async def read() -> tuple[dict[int, Book], dict[str, list[Rating]], int]:
        async with open_dynamodb_stores(
            table=settings.dynamodb_table or "", region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url
        ) as (ratings, catalog):
            return await catalog.get_many([1, 2, 3, 999]), await ratings.get_many(["58", "314"]), len(await ratings.scan_columns())

    return asyncio.run(read())


def test_import_writes_books_and_ratings_to_dynamodb_and_is_idempotent(
    dynamodb_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_table(monkeypatch, dynamodb_settings)
    books, ratings = tmp_path / "books.csv", tmp_path / "ratings.csv"
    books.write_text(BOOKS_CSV, encoding="utf-8")
    ratings.write_text(RATINGS_CSV, encoding="utf-8")

    assert main(["import", "--books", str(books), "--ratings", str(ratings)]) == 0
    first = contents(dynamodb_settings)
    output = capsys.readouterr()
    assert main(["import", "--books", str(books), "--ratings", str(ratings)]) == 0

    assert f"DynamoDB table {dynamodb_settings.dynamodb_table}" in output.out and "book 999" in output.err
    found_books, found_ratings, total = first
    assert sorted(found_books) == [1, 2, 3]
    assert found_books[2].authors == ("J.K. Rowling", "Mary GrandPré") and found_books[3].publication_year == -720
    assert found_ratings == {
        "58": [Rating("58", 1, 1, IMPORTED_RATED_AT), Rating("58", 2, 5, IMPORTED_RATED_AT)],
        "314": [Rating("314", 3, 2, IMPORTED_RATED_AT)],
    }
    assert total == 3
    assert contents(dynamodb_settings) == first  # the second import changed nothing


def test_create_table_creates_once_then_leaves_the_table_alone(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(dynamodb_table=f"bookrec-cli-{uuid.uuid4().hex[:8]}", dynamodb_endpoint_url=moto_server, aws_region="us-east-1")
    use_table(monkeypatch, settings)
    try:
        assert main(["create-table"]) == 0
        assert "created" in capsys.readouterr().out
        assert main(["create-table"]) == 0
        assert "already exists" in capsys.readouterr().out
        assert contents(settings) == ({}, {"58": [], "314": []}, 0)
    finally:

        async def drop() -> None:
            async with dynamodb_client(region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url) as client:
                await client.delete_table(TableName=settings.dynamodb_table)

        asyncio.run(drop())


def test_create_table_without_a_table_name_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DYNAMODB_TABLE", raising=False)

    assert main(["create-table"]) == 2

    assert capsys.readouterr().err == "bookrec create-table: error: DYNAMODB_TABLE is not set: name the table to create\n"


def test_create_table_at_an_unreachable_endpoint_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], moto_server: str
) -> None:
    # moto_server only for its dummy credentials: without any, botocore stops before connecting
    monkeypatch.setenv("DYNAMODB_TABLE", "bookrec-unreachable")
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens

    assert main(["create-table"]) == 2

    error = capsys.readouterr().err
    assert error.startswith("bookrec create-table: error: could not create DynamoDB table 'bookrec-unreachable': Could not connect")
    assert error.count("\n") == 1
