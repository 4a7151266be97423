"""The embedded stores: ratings and books in one SQLite file (the default when DYNAMODB_TABLE is unset).

Threading: every call of a store runs on one dedicated thread that owns the
store's single connection (a one-worker executor). SQLite serialises writers
anyway, one thread makes the connection safe without locks, and the event loop
never blocks on disk. The snapshot scan is the exception: it opens a short-lived
connection of its own, because WAL lets it read a consistent snapshot while
writes go on, and a full scan queued on the store's thread would stall the
request path's reads behind it.

Users get an integer code (`users.code`) so that ratings are keyed by two
integers: compact rows, and a snapshot scan that reads numbers only.

The file names itself: a UUID generated when the file is created (or, for a file
from before the `meta` table, when this version first opens it) is kept in `meta`,
so a model trained on one database is never served against another (`identity()`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from domain.models import Book, Rating, RatingColumns

# MIGRATIONS[v] upgrades a database at schema version v to v + 1 (kept in PRAGMA user_version).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE users (code INTEGER PRIMARY KEY, user_id TEXT NOT NULL UNIQUE)",
        """CREATE TABLE ratings (
            user_code INTEGER NOT NULL,
            book_id INTEGER NOT NULL,
            rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
            rated_at INTEGER NOT NULL,  -- microseconds since the unix epoch, UTC
            PRIMARY KEY (user_code, book_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE books (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            authors TEXT NOT NULL,  -- JSON array of names
            publication_year INTEGER,
            image_url TEXT,
            average_rating REAL,
            ratings_count INTEGER NOT NULL DEFAULT 0
        )""",
    ),
    (
        # IF NOT EXISTS: harmless on a file that somehow has them already.
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        # popular_book_ids: the first `limit` entries of this index, no sort (id is in every index).
        "CREATE INDEX IF NOT EXISTS books_by_popularity ON books (ratings_count DESC, id)",
    ),
)
IDENTITY_KEY = "identity"
SCHEMA_VERSION = len(MIGRATIONS)

BUSY_TIMEOUT_SECONDS = 30.0  # an import in another process holds the write lock for one batch at a time
WRITE_BATCH = 10_000  # ratings per transaction in put_many: bounds the WAL and the write lock's hold
SCAN_USERS_PER_QUERY = 8_192  # user codes per snapshot-scan query: bounds the concatenated strings in memory

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)

T = TypeVar("T")


class SchemaTooNew(RuntimeError):
    """The file was written by a newer bookrec; refusing beats misreading it."""


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def _moment(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), never implicit.
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe from corruption in WAL mode
    return connection


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking on upgrade.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    with _transaction(connection):  # read the version under the write lock: two processes never both migrate
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"{path} has schema version {version}; this bookrec understands up to {SCHEMA_VERSION}")
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Once per file: a new file, or one from before the meta table, gets its UUID here.
        connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (IDENTITY_KEY, str(uuid.uuid4())))


def _identity(connection: sqlite3.Connection) -> str:
    (value,) = connection.execute("SELECT value FROM meta WHERE key = ?", (IDENTITY_KEY,)).fetchone()
    return f"sqlite:{value}"


class SqliteDatabase:
    """One SQLite file, its connection and the thread that owns it; shared by both stores."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            self._connection, self.identity = self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown()
            raise
        self._closed = False

    def _open(self) -> tuple[sqlite3.Connection, str]:
        connection = _connect(self.path)
        try:
            _migrate(connection, self.path)
            return connection, _identity(connection)
        except BaseException:
            connection.close()
            raise

    async def run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run `function(connection)` on the connection's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, self._connection)

    async def read_snapshot(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run `function` in one read transaction on a fresh connection, in a worker thread."""
        return await asyncio.to_thread(self._read_snapshot, function)

    def _read_snapshot(self, function: Callable[[sqlite3.Connection], T]) -> T:
        connection = _connect(self.path)
        try:
            connection.execute("BEGIN")  # every SELECT inside sees the same committed state
            try:
                return function(connection)
            finally:
                connection.execute("COMMIT")
        finally:
            connection.close()

    def close(self) -> None:
        """Close the connection (after any queued calls) and stop its thread; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._connection.close).result()
        self._executor.shutdown()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


class _SqliteStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    def close(self) -> None:
        """Close the shared database (both stores); closing twice is harmless."""
        self.database.close()

    async def aclose(self) -> None:
        await self.database.aclose()


class SqliteRatingsRepository(_SqliteStore):
    """domain.ports.RatingsRepository on the `users` and `ratings` tables."""

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, list[Rating]]:
        """One query for the whole batch: json_each takes any number of ids as one bound parameter."""
        return await self.database.run(lambda connection: _get_ratings(connection, user_ids))

    async def upsert(self, rating: Rating) -> Rating:
        stored = replace(rating, rated_at=rating.rated_at.astimezone(timezone.utc))
        await self.database.run(lambda connection: _put_ratings(connection, [stored]))
        return stored

    async def put_many(self, ratings: Iterable[Rating]) -> int:
        """Write in transactions of WRITE_BATCH; returns rows written (a duplicate within a batch counts once).

        The iterable is consumed on the store's thread, so a generator that reads a
        file does its reading off the event loop too.
        """
        return await self.database.run(lambda connection: _put_ratings(connection, ratings))

    async def scan_columns(self) -> RatingColumns:
        return await self.database.read_snapshot(_scan_columns)

    async def user_ids(self) -> list[str]:
        """Users with a rating, ascending; on a snapshot connection, off the store's thread (a batch job's read)."""
        return await self.database.read_snapshot(_user_ids)

    async def identity(self) -> str:
        """"sqlite:<uuid>", the UUID kept in the file's `meta` table (read when the file was opened)."""
        return self.database.identity


class SqliteBookCatalog(_SqliteStore):
    """domain.ports.BookCatalog on the `books` table."""

    async def get_many(self, book_ids: Sequence[int]) -> dict[int, Book]:
        return await self.database.run(lambda connection: _get_books(connection, book_ids))

    async def put_many(self, books: Iterable[Book]) -> int:
        return await self.database.run(lambda connection: _put_books(connection, books))

    async def popular_book_ids(self, limit: int) -> list[int]:
        """The first `limit` entries of the books_by_popularity index."""
        return await self.database.run(lambda connection: _popular_book_ids(connection, limit))


def open_sqlite_stores(path: str | Path) -> tuple[SqliteRatingsRepository, SqliteBookCatalog]:
    """Both stores on one database file (created with its folder if missing); close either to close both."""
    database = SqliteDatabase(path)
    return SqliteRatingsRepository(database), SqliteBookCatalog(database)


def _get_ratings(connection: sqlite3.Connection, user_ids: Sequence[str]) -> dict[str, list[Rating]]:
    found: dict[str, list[Rating]] = {user_id: [] for user_id in user_ids}
    rows = connection.execute(
        """SELECT users.user_id, ratings.book_id, ratings.rating, ratings.rated_at
           FROM users JOIN ratings ON ratings.user_code = users.code
           WHERE users.user_id IN (SELECT value FROM json_each(?))
           ORDER BY ratings.user_code, ratings.book_id""",
        (json.dumps(list(found)),),
    )
    for user_id, book_id, stars, rated_at in rows:
        found[user_id].append(Rating(user_id, book_id, stars, _moment(rated_at)))
    return found


def _put_ratings(connection: sqlite3.Connection, ratings: Iterable[Rating]) -> int:
    written = 0
    for batch in _batches(ratings, WRITE_BATCH):
        latest = {(rating.user_id, rating.book_id): rating for rating in batch}  # last one wins
        with _transaction(connection):
            codes = _user_codes(connection, {user_id for user_id, _ in latest})
            connection.executemany(
                """INSERT INTO ratings (user_code, book_id, rating, rated_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (user_code, book_id) DO UPDATE SET rating = excluded.rating, rated_at = excluded.rated_at""",
                [(codes[r.user_id], r.book_id, r.rating, _micros(r.rated_at)) for r in latest.values()],
            )
        written += len(latest)
    return written


def _user_codes(connection: sqlite3.Connection, user_ids: set[str]) -> dict[str, int]:
    """Each user's code, giving new users one."""
    connection.executemany("INSERT OR IGNORE INTO users (user_id) VALUES (?)", ((user_id,) for user_id in user_ids))
    rows = connection.execute(
        "SELECT user_id, code FROM users WHERE user_id IN (SELECT value FROM json_each(?))", (json.dumps(list(user_ids)),)
    )
    return dict(rows)


def _user_ids(connection: sqlite3.Connection) -> list[str]:
    # users.user_id is UNIQUE (its index gives the order); EXISTS is one primary-key probe per user.
    rows = connection.execute(
        """SELECT user_id FROM users
           WHERE EXISTS (SELECT 1 FROM ratings WHERE ratings.user_code = users.code)
           ORDER BY user_id"""
    )
    return [user_id for (user_id,) in rows]


def _scan_columns(connection: sqlite3.Connection) -> RatingColumns:
    """Every rating as columns, fast: SQLite concatenates each column and numpy parses the text.

    Fetching one Python tuple per rating costs ~1.3 s per million ratings; three
    group_concat strings per range of users cost ~0.3 s. The aggregates of one
    query step over the same rows in the same order, so the columns stay aligned.
    """
    users = connection.execute("SELECT code, user_id FROM users ORDER BY code").fetchall()
    if not users:
        return RatingColumns((), np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32))
    codes = np.fromiter((code for code, _ in users), dtype=np.int64, count=len(users))
    index_of_code = np.zeros(int(codes[-1]) + 1, dtype=np.int32)
    index_of_code[codes] = np.arange(len(users), dtype=np.int32)
    parts: list[list[np.ndarray]] = [[], [], []]
    for low in range(0, int(codes[-1]) + 1, SCAN_USERS_PER_QUERY):
        row = connection.execute(
            """SELECT group_concat(user_code), group_concat(book_id), group_concat(rating)
               FROM ratings WHERE user_code >= ? AND user_code < ?""",
            (low, low + SCAN_USERS_PER_QUERY),
        ).fetchone()
        if row[0] is not None:
            for part, text in zip(parts, row):
                part.append(np.fromstring(text, dtype=np.int32, sep=","))  # integer parsing is ~10x float's
    user_codes, book_ids, stars = (np.concatenate(part or [np.empty(0, np.int32)]) for part in parts)
    return RatingColumns(
        user_ids=tuple(user_id for _, user_id in users),
        user_codes=index_of_code[user_codes],
        book_ids=book_ids,
        ratings=stars.astype(np.float32),
    )


def _get_books(connection: sqlite3.Connection, book_ids: Sequence[int]) -> dict[int, Book]:
    rows = connection.execute(
        """SELECT id, title, authors, publication_year, image_url, average_rating, ratings_count
           FROM books WHERE id IN (SELECT value FROM json_each(?))""",
        (json.dumps([int(book_id) for book_id in book_ids]),),
    )
    return {
        book_id: Book(book_id, title, tuple(json.loads(authors)), year, image_url, average_rating, ratings_count)
        for book_id, title, authors, year, image_url, average_rating, ratings_count in rows
    }


def _put_books(connection: sqlite3.Connection, books: Iterable[Book]) -> int:
    latest = {book.id: book for book in books}
    with _transaction(connection):
        connection.executemany(
            """INSERT INTO books (id, title, authors, publication_year, image_url, average_rating, ratings_count)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET
                   title = excluded.title, authors = excluded.authors, publication_year = excluded.publication_year,
                   image_url = excluded.image_url, average_rating = excluded.average_rating,
                   ratings_count = excluded.ratings_count""",
            [
                (b.id, b.title, json.dumps(list(b.authors), ensure_ascii=False), b.publication_year, b.image_url,
                 b.average_rating, b.ratings_count)
                for b in latest.values()
            ],
        )
    return len(latest)


def _popular_book_ids(connection: sqlite3.Connection, limit: int) -> list[int]:
    if limit <= 0:  # LIMIT -1 would mean "no limit" to SQLite
        return []
    rows = connection.execute("SELECT id FROM books ORDER BY ratings_count DESC, id LIMIT ?", (limit,))
    return [book_id for (book_id,) in rows]
