"""`bookrec evaluate`: the offline protocol from the command line."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from domain.evaluation import PLAIN_EASE_L2, describe
from domain.item_model import ItemModelParams
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


VARIANTS = ("popularity (rating count)", "popularity (ratings >= 4)", "baseline user-user k=50",
            f"item-kNN: {describe(replace(ItemModelParams(), algorithm='knn'))}", f"item model defaults: {describe(ItemModelParams())}")


def test_prints_a_table_of_the_baselines_user_user_item_knn_and_the_item_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")

    assert main(["evaluate", "--ratings", str(ratings), "--test-users", "20", "--holdout", "5"]) == 0

    out = capsys.readouterr().out
    assert "20 test users, 5 hidden each, seed 42" in out
    rows = [line for line in out.splitlines() if line.startswith(("popularity", "baseline", "item"))]
    assert [next(variant for variant in VARIANTS if row.startswith(variant)) for row in rows] == list(VARIANTS)
    assert "plain EASE" not in out and "best of sweep" not in out  # only with --sweep


def by_variant(report: dict) -> dict[str, dict]:
    return {row["name"].split(":")[0].split(" k=")[0]: row for row in report["results"]}


def test_json_has_every_metric_and_the_item_model_beats_popularity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv")

    report = evaluate_json(capsys, "--ratings", str(ratings), "--test-users", "30", "--holdout", "5")

    rows = by_variant(report)
    assert set(rows) == {"popularity (rating count)", "popularity (ratings >= 4)", "baseline user-user", "item-kNN",
                         "item model defaults"}
    item, user_user, knn = rows["item model defaults"], rows["baseline user-user"], rows["item-kNN"]
    popular = rows["popularity (rating count)"]
    for row in rows.values():
        assert {"ndcg", "recall", "precision", "coverage", "ms_per_user", "users", "popular_share"} <= row.keys()
        assert 0 <= row["ndcg"] <= 1 and 0 <= row["coverage"] <= 1
    assert item["ndcg"] > popular["ndcg"]  # the taste groups are invisible to popularity
    assert item["model"] == knn["model"] == "ItemModelParams" and user_user["model"] == "RecommenderParams"
    assert item["params"]["l2"] == ItemModelParams().l2 and knn["params"]["algorithm"] == "knn" and user_user["params"]["neighbours"] == 50
    assert popular["params"] is None and popular["model"] == "popularity"


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


def test_the_sweep_reports_plain_ease_every_variant_and_the_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv", n_users=30)

    report = evaluate_json(capsys, "--ratings", str(ratings), "--test-users", "10", "--holdout", "5", "--sweep")

    names = [row["name"] for row in report["results"]]
    assert names[-1].startswith("best of sweep: ")
    assert len(set(names)) == len(names)
    plain = [row for row in report["results"] if row["name"].startswith("plain EASE (binary, no pruning)")]
    assert [row["params"]["l2"] for row in plain] == list(PLAIN_EASE_L2)
    assert all(row["params"]["algorithm"] == "ease" and row["params"]["input"] == "binary"
               and row["params"]["weights_per_book"] >= 40 for row in plain)  # 40 books: nothing pruned
    unpruned = [row for row in report["results"] if row["name"].startswith("item model defaults, no pruning: ")]
    defaults = ItemModelParams()
    if defaults.input == "binary" and defaults.l2 in PLAIN_EASE_L2:
        assert not unpruned  # it is one of the plain EASE rows
    else:
        assert [{**row["params"], "weights_per_book": defaults.weights_per_book} for row in unpruned] == [asdict(defaults)]
        assert unpruned[0]["params"]["weights_per_book"] >= 40
    swept = [row for row in report["results"] if row["model"] == "ItemModelParams" and row["params"]["algorithm"] == "auto"
             and row not in unpruned]
    assert len(swept) > 10  # the defaults, every single change of them, and the best
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
@pytest.mark.slow
def test_on_the_shared_goodbooks_file_the_item_model_beats_user_user_and_popularity(
    goodbooks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate_json(capsys, "--ratings", str(goodbooks_dir / "ratings-5pct-users.csv"),
                           "--books", str(goodbooks_dir / "books.csv"))

    ndcg = {name: row["ndcg"] for name, row in by_variant(report).items()}
    popular = max(ndcg["popularity (rating count)"], ndcg["popularity (ratings >= 4)"])
    # QUALITY.md, seed 42: 0.27 against user-user's 0.195 and popularity's 0.062.
    assert ndcg["item model defaults"] > 1.2 * ndcg["baseline user-user"] > 1.2 * 2.5 * popular
    assert ndcg["item model defaults"] > ndcg["item-kNN"]


def test_a_file_without_valid_ratings_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "ratings.csv"
    empty.write_text("user_id,book_id,rating\n")

    assert main(["evaluate", "--ratings", str(empty)]) == 2
    assert "has no valid rating" in capsys.readouterr().err
