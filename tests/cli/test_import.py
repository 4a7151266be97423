"""`bookrec import`: goodbooks CSV files into the SQLite stores, bad rows reported and skipped, idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.goodbooks_csv import IMPORTED_RATED_AT
from adapters.sqlite_store import open_sqlite_stores
from domain.models import Book, Rating
from graphql_api.cli import main

BOOKS_CSV = """book_id,authors,original_publication_year,title,average_rating,ratings_count,image_url
1,Suzanne Collins,2008.0,The Hunger Games,4.34,4780653,https://images.gr-assets.com/books/1447303603m/2767052.jpg
2,"J.K. Rowling, Mary GrandPré",1997.0,"Harry Potter and the Sorcerer's Stone (Harry Potter, #1)",4.44,4602479,https://s.gr-assets.com/assets/nophoto/book/111x148-bcc042a9c91a29c1d680899eff700a03.png
3,Homer,-720.0,The Odyssey,3.73,670326,
"""


@dataclass(frozen=True)
class Stored:
    triples: set[tuple[str, int, int]]
    users: int
    books: dict[int, Book]
    ratings_of: dict[str, list[Rating]]


def stored(path: Path, book_ids: range = range(1, 10_001), users: tuple[str, ...] = ()) -> Stored:
    async def read() -> Stored:
        ratings, catalog = open_sqlite_stores(path)
        try:
            columns = await ratings.scan_columns()
            triples = {
                (columns.user_ids[code], int(book), int(stars))
                for code, book, stars in zip(columns.user_codes, columns.book_ids, columns.ratings)
            }
            return Stored(triples, len(columns.user_ids), await catalog.get_many(list(book_ids)), await ratings.get_many(users))
        finally:
            await ratings.aclose()

    return asyncio.run(read())


def reference_pairs(path: Path) -> dict[tuple[str, int], int]:
    """The file's ratings, last duplicate winning, read the obvious way (to check the fast reader against)."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return {(row["user_id"], int(row["book_id"])): int(row["rating"]) for row in reader}


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data" / "bookrec.db"
    monkeypatch.setenv("SQLITE_PATH", str(path))
    monkeypatch.delenv("DYNAMODB_TABLE", raising=False)
    return path


@pytest.fixture
def books_csv(tmp_path: Path) -> Path:
    path = tmp_path / "books.csv"
    path.write_text(BOOKS_CSV, encoding="utf-8")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the real goodbooks-10k files -------------------------------------------------------------


@dataclass(frozen=True)
class RealImport:
    database: Path
    first_output: str
    reference: dict[tuple[str, int], int]


@pytest.fixture(scope="module")
def real_import(goodbooks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealImport]:
    """books.csv and ratings-5pct-users.csv imported once for the module (it takes a few seconds)."""
    database = tmp_path_factory.mktemp("real") / "bookrec.db"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SQLITE_PATH", str(database))
        env.delenv("DYNAMODB_TABLE", raising=False)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = main(real_import_args(goodbooks_dir))
        assert code == 0
        yield RealImport(database, output.getvalue(), reference_pairs(goodbooks_dir / "ratings-5pct-users.csv"))


def real_import_args(goodbooks_dir: Path) -> list[str]:
    return ["import", "--books", str(goodbooks_dir / "books.csv"), "--ratings", str(goodbooks_dir / "ratings-5pct-users.csv")]


@pytest.mark.shared_data
def test_real_files_import_every_book_and_rating(real_import: RealImport) -> None:
    contents = stored(real_import.database)

    assert len(real_import.reference) == 298_176  # the file has no duplicate pairs
    assert len(contents.books) == 10_000
    assert contents.users == 2_672
    assert contents.triples == {(user, book, stars) for (user, book), stars in real_import.reference.items()}
    assert "10,000 books and 298,176 ratings (2,672 users)" in real_import.first_output
    assert "skipped 0 bad rows" in real_import.first_output


@pytest.mark.shared_data
def test_real_books_keep_their_fields(real_import: RealImport) -> None:
    books = stored(real_import.database).books

    assert books[1] == Book(
        1, "The Hunger Games (The Hunger Games, #1)", ("Suzanne Collins",), 2008,
        "https://images.gr-assets.com/books/1447303603m/2767052.jpg", 4.34, 4780653,
    )
    assert books[2].authors == ("J.K. Rowling", "Mary GrandPré")
    assert sum(book.image_url is None for book in books.values()) == 3_332  # goodreads' "nophoto" placeholders
    assert sum(book.publication_year is None for book in books.values()) == 21
    assert min(book.publication_year or 0 for book in books.values()) < 0  # BC years survive


@pytest.mark.shared_data
def test_importing_twice_changes_nothing(real_import: RealImport, goodbooks_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    users = ("58", "314", "9999999")
    before = stored(real_import.database, users=users)
    monkeypatch.setenv("SQLITE_PATH", str(real_import.database))
    monkeypatch.delenv("DYNAMODB_TABLE", raising=False)

    assert main(real_import_args(goodbooks_dir)) == 0
    after = stored(real_import.database, users=users)

    assert after == before
    assert len(after.ratings_of["58"]) > 0
    assert all(rating.rated_at == IMPORTED_RATED_AT for rating in after.ratings_of["58"])
    assert "10,000 books and 298,176 ratings (2,672 users)" in capsys.readouterr().out


# --- small files written by the tests ---------------------------------------------------------


def test_bad_rows_are_reported_by_line_and_skipped(database: Path, books_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write(
        tmp_path / "ratings.csv",
        "user_id,book_id,rating\n"  # line 1
        "58,1,4\n"  # 2
        "58,2\n"  # 3: too few fields
        "alice,2,3\n"  # 4: goodbooks user ids are integers
        "58,2,five\n"  # 5
        "58,3,0\n"  # 6
        "59,3,6\n"  # 7
        "59,404,5\n"  # 8: no such book
        "\n"  # 9: blank lines are not rows
        "59,1,2\n"  # 10
        "58,1,5\n"  # 11: a later rating of the same pair wins
        "60,2,3,1\n",  # 12: too many fields
    )

    assert main(["import", "--books", str(books_csv), "--ratings", str(ratings)]) == 0
    out, err = capsys.readouterr()

    assert err.splitlines() == [
        f"{ratings}:3: expected 3 fields, found 2",
        f"{ratings}:4: user_id 'alice' is not an integer",
        f"{ratings}:5: rating 'five' is not an integer",
        f"{ratings}:6: rating 0 is not in 1..5",
        f"{ratings}:7: rating 6 is not in 1..5",
        f"{ratings}:8: book 404 is not in the catalog",
        f"{ratings}:12: expected 3 fields, found 4",
    ]
    assert stored(database).triples == {("58", 1, 5), ("59", 1, 2)}
    assert "3 books and 2 ratings (2 users)" in out and "skipped 7 bad rows" in out


def test_bad_rows_of_a_numeric_file_get_their_own_line_numbers(database: Path, books_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An all-integer file takes the vectorised reader: its line numbers must be right too."""
    ratings = write(tmp_path / "ratings.csv", "user_id,book_id,rating\n1,1,5\n1,2,9\n2,7,4\n2,3,1")

    assert main(["import", "--books", str(books_csv), "--ratings", str(ratings)]) == 0

    assert capsys.readouterr().err.splitlines() == [f"{ratings}:3: rating 9 is not in 1..5", f"{ratings}:4: book 7 is not in the catalog"]
    assert stored(database).triples == {("1", 1, 5), ("2", 3, 1)}


def test_bad_book_rows_are_reported_and_skipped(database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    books = write(tmp_path / "books.csv", BOOKS_CSV + "x,Nobody,,No Id,,,\n4,Someone,1999,,3.0,1,\n5,Someone,1999,Short Row\n")

    assert main(["import", "--books", str(books)]) == 0

    assert capsys.readouterr().err.splitlines() == [
        f"{books}:5: book_id 'x' is not a number",
        f"{books}:6: title is empty",
        f"{books}:7: expected 7 fields, found 4",
    ]
    assert set(stored(database).books) == {1, 2, 3}


def test_books_fields_are_read_as_goodbooks_writes_them(database: Path, books_csv: Path) -> None:
    assert main(["import", "--books", str(books_csv)]) == 0

    books = stored(database).books
    assert books[2] == Book(2, "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)", ("J.K. Rowling", "Mary GrandPré"), 1997, None, 4.44, 4602479)
    assert books[3] == Book(3, "The Odyssey", ("Homer",), -720, None, 3.73, 670326)


def test_columns_may_come_book_first(database: Path, books_csv: Path, tmp_path: Path) -> None:
    ratings = write(tmp_path / "ratings.csv", "book_id,user_id,rating\n1,58,4\n2,58,3\n1,7,5\n")

    assert main(["import", "--books", str(books_csv), "--ratings", str(ratings)]) == 0

    assert stored(database).triples == {("58", 1, 4), ("58", 2, 3), ("7", 1, 5)}


def test_ratings_alone_go_into_the_existing_catalog(database: Path, books_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "--books", str(books_csv)]) == 0
    ratings = write(tmp_path / "ratings.csv", "user_id,book_id,rating\n58,3,4\n58,4,4\n")

    assert main(["import", "--ratings", str(ratings)]) == 0

    assert stored(database).triples == {("58", 3, 4)}
    assert capsys.readouterr().err.splitlines() == [f"{ratings}:3: book 4 is not in the catalog"]


def test_re_importing_a_changed_rating_overwrites_it(database: Path, books_csv: Path, tmp_path: Path) -> None:
    ratings = write(tmp_path / "ratings.csv", "user_id,book_id,rating\n58,1,4\n58,2,2\n")
    assert main(["import", "--books", str(books_csv), "--ratings", str(ratings)]) == 0
    write(ratings, "user_id,book_id,rating\n58,1,1\n")

    assert main(["import", "--ratings", str(ratings)]) == 0

    assert stored(database).triples == {("58", 1, 1), ("58", 2, 2)}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--ratings", "{tmp}/missing.csv"], "cannot read ratings file {tmp}/missing.csv: No such file or directory"),
        (["--books", "{tmp}"], "cannot read books file {tmp}: Is a directory"),
        (["--ratings", "{tmp}/header.csv"], "ratings file {tmp}/header.csv: header 'user,book,stars' is not recognised (needs user_id, book_id, rating)"),
        (["--books", "{tmp}/header.csv"], "books file {tmp}/header.csv: header 'user,book,stars' is not recognised"),
        ([], "nothing to import: give --books PATH and/or --ratings PATH"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_code_2_and_writes_nothing(
    arguments: list[str], message: str, database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "header.csv", "user,book,stars\n1,2,3\n")

    assert main(["import", *(argument.format(tmp=tmp_path) for argument in arguments)]) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("bookrec import: error: " + message.format(tmp=tmp_path))
    assert not database.exists()


def test_the_console_script_reports_a_bad_file_with_exit_code_2(database: Path, tmp_path: Path) -> None:
    bookrec = Path(sys.executable).with_name("bookrec")
    assert bookrec.is_file(), "the bookrec console script is not installed: run make install"

    result = subprocess.run([str(bookrec), "import", "--ratings", str(tmp_path / "missing.csv")], capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"bookrec import: error: cannot read ratings file {tmp_path}/missing.csv: No such file or directory"]
    assert result.stdout == ""
