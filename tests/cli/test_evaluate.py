"""`bookrec evaluate`: the offline protocol from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from graphql_api.cli import main


def write_ratings(path: Path, n_users: int = 60, n_books: int = 40, seed: int = 0) -> Path:
    """Two taste groups (odd and even books), so neighbours find something the popular list does not."""
    rng = np.random.default_rng(seed)
    lines = ["user_id,book_id,rating"]
    for user in range(1, n_users + 1):
        shelf = np.arange(1 + user % 2, n_books + 1, 2)
        for book in rng.choice(shelf, size=int(rng.integers(15, 20)), replace=False):
            lines.append(f"{user},{book},{rng.integers(3, 6)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def evaluate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["evaluate", *args, "--json"]) == 0
    return orjson.loads(capsys.readouterr().out)


def test_prints_a_table_of_the_baselines_and_the_recommender(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")

    assert main(["evaluate", "--ratings", str(ratings), "--test-users", "20", "--holdout", "5"]) == 0

    out = capsys.readouterr().out
    assert "20 test users, 5 hidden each, seed 42" in out
    for variant in ("popularity (rating count)", "popularity (ratings >= 4)", "recommender defaults: k=50"):
        assert variant in out


def test_json_has_every_metric_and_the_recommender_beats_popularity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")

    report = evaluate_json(capsys, "--ratings", str(ratings), "--test-users", "30", "--holdout", "5")

    by_name = {row["name"].split(":")[0]: row for row in report["results"]}
    recommender, popular = by_name["recommender defaults"], by_name["popularity (rating count)"]
    for row in (recommender, popular):
        assert {"ndcg", "recall", "precision", "coverage", "ms_per_user", "users"} <= row.keys()
        assert 0 <= row["ndcg"] <= 1 and 0 <= row["coverage"] <= 1
    assert recommender["ndcg"] > popular["ndcg"]  # the taste groups are invisible to popularity
    assert recommender["params"]["neighbours"] == 50 and popular["params"] is None


def test_the_same_seed_gives_the_same_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = str(write_ratings(tmp_path / "ratings.csv"))

    first, again, other = (evaluate_json(capsys, "--ratings", ratings, "--test-users", "20", "--seed", seed)
                           for seed in ("1", "1", "2"))

    def metrics(report: dict) -> list[tuple[float, float]]:
        return [(row["ndcg"], row["recall"]) for row in report["results"]]

    assert metrics(first) == metrics(again) != metrics(other)


def test_books_define_the_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")
    books = tmp_path / "books.csv"
    books.write_text(
        "book_id,authors,original_publication_year,title,average_rating,ratings_count,image_url\n"
        + "".join(f"{book},Author,2000,Book {book},4.0,10,\n" for book in range(1, 81))
    )

    report = evaluate_json(capsys, "--ratings", str(ratings), "--books", str(books), "--test-users", "20")

    assert "catalogue 80 books" in report["data"]


def test_the_sweep_reports_every_variant_and_the_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv", n_users=30)

    report = evaluate_json(capsys, "--ratings", str(ratings), "--test-users", "10", "--holdout", "5", "--sweep")

    names = [row["name"] for row in report["results"]]
    assert names[-1].startswith("best of sweep: ")
    assert len(names) > 20 and len(set(names)) == len(names)
    swept = [row for row in report["results"] if row["params"] is not None]
    assert report["results"][-1]["ndcg"] == max(row["ndcg"] for row in swept)


def test_a_missing_file_is_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--ratings", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bookrec evaluate: error: cannot read ratings file") and err.count("\n") == 1


def test_too_few_ratings_for_the_holdout_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")

    assert main(["evaluate", "--ratings", str(ratings), "--holdout", "50"]) == 2
    assert "no user has the 55 ratings a hold-out of 50 needs" in capsys.readouterr().err


@pytest.mark.parametrize("argument", [["--test-users", "0"], ["--holdout", "0"]])
def test_nonsense_numbers_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: list[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")

    assert main(["evaluate", "--ratings", str(ratings), *argument]) == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.shared_data
def test_on_the_shared_goodbooks_file_the_recommender_beats_popularity(goodbooks_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = evaluate_json(capsys, "--ratings", str(goodbooks_dir / "ratings-5pct-users.csv"), "--test-users", "200")

    ndcg = {row["name"].split(":")[0]: row["ndcg"] for row in report["results"]}
    assert ndcg["recommender defaults"] > max(ndcg["popularity (rating count)"], ndcg["popularity (ratings >= 4)"])


def test_a_file_without_valid_ratings_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "ratings.csv"
    empty.write_text("user_id,book_id,rating\n")

    assert main(["evaluate", "--ratings", str(empty)]) == 2
    assert "has no valid rating" in capsys.readouterr().err
