"""Reading goodbooks CSV into the columns a snapshot is built from (what evaluation and benchmarks use)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from adapters.goodbooks_csv import GoodbooksFormatError, parse_ratings, read_ratings_columns
from domain.models import RatingColumns


def triples(columns: RatingColumns) -> list[tuple[str, int, float]]:
    return sorted(
        (columns.user_ids[code], int(book), float(stars))
        for code, book, stars in zip(columns.user_codes, columns.book_ids, columns.ratings)
    )


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode())
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_columns_keep_the_last_rating_of_a_pair(tmp_path: Path, newline: str) -> None:
    path = write(tmp_path / "r.csv", "book_id,user_id,rating\n10,58,1\n11,58,2\n10,7,3\n10,58,5\n", newline)

    columns = read_ratings_columns(path)

    assert columns.user_codes.dtype == np.int32 and columns.book_ids.dtype == np.int32
    assert columns.ratings.dtype == np.float32
    assert sorted(columns.user_ids) == ["58", "7"]
    assert triples(columns) == [("58", 10, 5.0), ("58", 11, 2.0), ("7", 10, 3.0)]


def test_a_header_alone_is_an_empty_file(tmp_path: Path) -> None:
    columns = read_ratings_columns(write(tmp_path / "r.csv", "user_id,book_id,rating\n"))

    assert len(columns) == 0 and columns.user_ids == ()


def test_bad_rows_are_left_out_of_the_columns_and_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user_id,book_id,rating\n1,1,5\n1,x,5\n2,2,4\n")

    assert triples(read_ratings_columns(path)) == [("1", 1, 5.0), ("2", 2, 4.0)]
    assert [(problem.line, problem.message) for problem in parse_ratings(path).problems] == [(3, "book_id 'x' is not an integer")]


@pytest.mark.parametrize("header", ["user_id,book_id", "user_id,book_id,rating,extra", "user_id,user_id,rating", ""])
def test_an_unknown_header_is_a_format_error(tmp_path: Path, header: str) -> None:
    with pytest.raises(GoodbooksFormatError, match="header"):
        parse_ratings(write(tmp_path / "r.csv", f"{header}\n1,2,3\n"))


@pytest.mark.shared_data
def test_the_real_ratings_file_reads_whole(goodbooks_dir: Path) -> None:
    path = goodbooks_dir / "ratings-5pct-users.csv"
    with open(path, newline="") as file:
        expected = sorted((row["user_id"], int(row["book_id"]), float(row["rating"])) for row in csv.DictReader(file))

    columns = read_ratings_columns(path)

    assert len(columns) == 298_176 and len(columns.user_ids) == 2_672
    assert triples(columns) == expected
