"""`bookrec generate`: deterministic synthetic goodbooks files with a realistic shape and CF signal."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from adapters.goodbooks_csv import parse_books, parse_ratings
from graphql_api.cli import main

USERS, BOOKS, RATINGS = 500, 300, 15_000


def generate(out: Path, *, seed: int = 7, users: int = USERS, books: int = BOOKS, ratings: int = RATINGS) -> Path:
    arguments = ["generate", "--users", str(users), "--books", str(books), "--ratings", str(ratings), "--seed", str(seed)]
    assert main([*arguments, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def matrix(generated: Path) -> np.ndarray:
    """The generated ratings as a dense users x books matrix (0 = not rated), read with the csv module."""
    stars = np.zeros((USERS, BOOKS), dtype=np.float32)
    with open(generated / "ratings.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["user_id", "book_id", "rating"]
    pairs = {(int(user), int(book)) for user, book, _ in rows[1:]}
    assert len(pairs) == len(rows) - 1 == RATINGS  # exactly R ratings, no pair twice
    for user, book, rating in rows[1:]:
        stars[int(user) - 1, int(book) - 1] = int(rating)
    return stars


def test_the_same_seed_writes_the_same_bytes(generated: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again")
    other = generate(tmp_path / "other", seed=8)

    for name in ("books.csv", "ratings.csv"):
        assert (again / name).read_bytes() == (generated / name).read_bytes()
    assert (other / "ratings.csv").read_bytes() != (generated / "ratings.csv").read_bytes()


def test_every_user_rates_a_few_books_with_stars_1_to_5(matrix: np.ndarray) -> None:
    rated_per_user = (matrix > 0).sum(axis=1)

    assert rated_per_user.min() >= 5
    assert rated_per_user.max() > 3 * np.median(rated_per_user)  # varied activity, not uniform
    assert set(np.unique(matrix[matrix > 0])) == {1, 2, 3, 4, 5}
    assert 3.8 < matrix[matrix > 0].mean() < 4.0  # goodbooks: 3.90


def test_book_popularity_is_skewed(matrix: np.ndarray) -> None:
    readers = np.sort((matrix > 0).sum(axis=0))[::-1]

    assert readers[: BOOKS // 10].sum() > 0.25 * RATINGS  # the top 10% of books: 2.5x a uniform share
    assert readers[0] > 5 * np.median(readers)


def test_collaborative_filtering_beats_popularity(matrix: np.ndarray) -> None:
    """Hide one rating per user: cosine user-kNN must find it in its top 10 clearly more often than popularity."""
    rng = np.random.default_rng(0)
    hidden = np.array([rng.choice(np.flatnonzero(row)) for row in matrix])
    known = matrix.copy()
    known[np.arange(USERS), hidden] = 0
    unit = known / np.linalg.norm(known, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, 0)
    weakest = np.argpartition(similarity, -30, axis=1)[:, :-30]
    np.put_along_axis(similarity, weakest, 0, axis=1)  # keep each user's 30 nearest neighbours

    def hit_rate(scores: np.ndarray) -> float:
        scores = np.where(known > 0, -np.inf, scores)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        return float((top == hidden[:, None]).any(axis=1).mean())

    collaborative = hit_rate(similarity @ known)
    popular = hit_rate(np.broadcast_to((known > 0).sum(axis=0), known.shape).astype(np.float32))
    assert collaborative > 1.4 * popular


def test_books_file_describes_every_book_and_imports(generated: Path, matrix: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    parsed = parse_books(generated / "books.csv")

    assert parsed.problems == () and [book.id for book in parsed.books] == list(range(1, BOOKS + 1))
    assert parsed.books[16].title == "Synthetic Book 17" and parsed.books[16].authors[0].startswith("Author ")
    assert [book.ratings_count for book in parsed.books] == (matrix > 0).sum(axis=0).tolist()
    assert parse_ratings(generated / "ratings.csv").problems == ()
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "bookrec.db"))
    monkeypatch.delenv("DYNAMODB_TABLE", raising=False)
    capsys.readouterr()

    assert main(["import", "--books", str(generated / "books.csv"), "--ratings", str(generated / "ratings.csv")]) == 0

    assert f"{BOOKS} books and {RATINGS:,} ratings ({USERS} users)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--users", "0"], "--users and --books must be at least 1"),
        (["--users", "10", "--books", "10", "--ratings", "101"], "--ratings must be between 50 (5 per user) and 100"),
        (["--users", "10", "--books", "10", "--ratings", "49"], "--ratings must be between 50 (5 per user) and 100"),
        (["--seed", "-1"], "--seed must be a non-negative integer"),
    ],
)
def test_an_impossible_shape_is_one_line_and_exit_code_2(arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", *arguments, "--out", str(tmp_path / "out")]) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"bookrec generate: error: {message}")
    assert not (tmp_path / "out").exists()


def test_every_rating_is_used_when_users_rate_every_book(tmp_path: Path) -> None:
    out = generate(tmp_path, users=20, books=8, ratings=160)

    parsed = parse_ratings(out / "ratings.csv")
    assert len(parsed) == 160 and len(set(zip(parsed.user_ids.tolist(), parsed.book_ids.tolist()))) == 160
