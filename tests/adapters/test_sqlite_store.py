"""The SQLite stores: both port contracts, plus what only a file on disk can show."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adapters.sqlite_store import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, SqliteBookCatalog, SqliteRatingsRepository, open_sqlite_stores
from domain.models import Book, Rating
from tests.contract.catalog_contract import BookCatalogContract
from tests.contract.ratings_contract import RatingsRepositoryContract


@pytest.fixture
async def ratings_repository(tmp_path: Path) -> AsyncIterator[SqliteRatingsRepository]:
    ratings, _ = open_sqlite_stores(tmp_path / "bookrec.db")
    yield ratings
    await ratings.aclose()


@pytest.fixture
async def book_catalog(tmp_path: Path) -> AsyncIterator[SqliteBookCatalog]:
    _, catalog = open_sqlite_stores(tmp_path / "bookrec.db")
    yield catalog
    await catalog.aclose()


class TestSqliteRatings(RatingsRepositoryContract):
    pass


class TestSqliteCatalog(BookCatalogContract):
    pass


AT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


async def test_data_outlives_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "bookrec.db"
    ratings, catalog = open_sqlite_stores(path)
    await catalog.put_many([Book(7, "Kept", ("A. Writer",), 1999, None, 4.1, 12)])
    await ratings.put_many([Rating("alice", 7, 4, AT), Rating("bob", 7, 2, AT)])
    await ratings.aclose()

    ratings, catalog = open_sqlite_stores(path)
    try:
        assert await catalog.get_many([7]) == {7: Book(7, "Kept", ("A. Writer",), 1999, None, 4.1, 12)}
        assert await ratings.get_many(["alice"]) == {"alice": [Rating("alice", 7, 4, AT)]}
        assert len(await ratings.scan_columns()) == 2
    finally:
        await ratings.aclose()


async def test_a_new_file_gets_the_current_schema_version_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "bookrec.db"
    open_sqlite_stores(path)[0].close()

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert SCHEMA_VERSION >= 1


def test_a_file_from_a_newer_bookrec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bookrec.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(SchemaTooNew, match="schema version"):
        open_sqlite_stores(path)


async def test_the_snapshot_scan_sees_writes_committed_before_it(tmp_path: Path) -> None:
    """The scan reads on its own connection: it must still see what the store's connection wrote."""
    ratings, _ = open_sqlite_stores(tmp_path / "bookrec.db")
    try:
        await ratings.put_many(Rating(f"u{n}", book, 5 - book % 5, AT) for n in range(20_000) for book in (1, 2))
        await ratings.upsert(Rating("u0", 1, 1, AT))

        columns = await ratings.scan_columns()

        assert len(columns) == 40_000 and len(columns.user_ids) == 20_000
        u0 = columns.user_ids.index("u0")
        assert {(int(b), int(r)) for c, b, r in zip(columns.user_codes, columns.book_ids, columns.ratings) if c == u0} == {
            (1, 1),
            (2, 3),
        }
    finally:
        await ratings.aclose()


async def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    ratings, catalog = open_sqlite_stores(tmp_path / "bookrec.db")
    await ratings.aclose()
    await catalog.aclose()
    catalog.close()


async def identity_of(path: Path) -> str:
    ratings, _ = open_sqlite_stores(path)
    try:
        return await ratings.identity()
    finally:
        await ratings.aclose()


async def test_the_identity_is_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bookrec.db"
    first = await identity_of(path)

    assert first.startswith("sqlite:") and str(uuid.UUID(first.removeprefix("sqlite:"))) == first.removeprefix("sqlite:")
    assert await identity_of(path) == first  # reopened: the same file, the same name
    assert await identity_of(tmp_path / "other.db") != first  # another file, another name
    for leftover in tmp_path.glob("bookrec.db*"):  # the file and its WAL companions
        leftover.unlink()
    assert await identity_of(path) != first  # deleted and created again: a new database


async def test_a_file_from_before_the_meta_table_is_migrated_and_named_once(tmp_path: Path) -> None:
    path = tmp_path / "bookrec.db"
    with sqlite3.connect(path) as connection:  # what schema version 1 created, with data in it
        for statement in MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute("INSERT INTO users (code, user_id) VALUES (1, 'alice')")
        connection.execute("INSERT INTO ratings VALUES (1, 7, 4, 0)")
        connection.execute("INSERT INTO books (id, title, authors, ratings_count) VALUES (7, 'Kept', '[]', 12)")
        connection.execute("PRAGMA user_version = 1")
    connection.close()

    ratings, catalog = open_sqlite_stores(path)
    try:
        identity = await ratings.identity()
        assert identity.startswith("sqlite:")
        assert await ratings.user_ids() == ["alice"]
        assert await catalog.popular_book_ids(5) == [7]
        assert (await ratings.get_many(["alice"]))["alice"][0].book_id == 7
    finally:
        await ratings.aclose()
    assert await identity_of(path) == identity
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("SELECT count(*) FROM meta").fetchone() == (1,)
    connection.close()


async def test_user_ids_leave_out_a_user_row_without_ratings(tmp_path: Path) -> None:
    path = tmp_path / "bookrec.db"
    ratings, _ = open_sqlite_stores(path)
    try:
        await ratings.put_many([Rating("bob", 1, 3, AT), Rating("alice", 2, 5, AT)])
        await ratings.database.run(lambda connection: connection.execute("INSERT INTO users (user_id) VALUES ('carol')"))

        assert await ratings.user_ids() == ["alice", "bob"]
    finally:
        await ratings.aclose()


async def test_popular_book_ids_read_the_index_without_sorting(tmp_path: Path) -> None:
    ratings, catalog = open_sqlite_stores(tmp_path / "bookrec.db")
    try:
        plan = await catalog.database.run(
            lambda connection: connection.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM books ORDER BY ratings_count DESC, id LIMIT 10"
            ).fetchall()
        )
    finally:
        await ratings.aclose()

    details = " ".join(row[-1] for row in plan)
    assert "books_by_popularity" in details and "TEMP B-TREE" not in details
