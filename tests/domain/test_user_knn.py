"""The recommender on hand-made matrices whose right answers are known (no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

import domain.user_knn as recommender_module
from domain.models import Rating, RatingColumns, RecommendationSource
from domain.ranking import top_k_per_column
from domain.user_knn import ModelSnapshot, Recommender, RecommenderParams

CF = RecommendationSource.COLLABORATIVE
POPULAR = RecommendationSource.POPULAR
RATED_AT = datetime(2024, 1, 1, tzinfo=timezone.utc)
# The plain model the hand-made answers are worked out for: cosine on stars, no shrinkage,
# neighbours' share as the score, popularity by rating count, one neighbour is enough.
PLAIN = RecommenderParams(neighbours=10, min_neighbours=1, shrinkage=0.0, similarity="rating", mean_centre=False,
                          aggregation="binary", popularity="count", popularity_discount=0.0)


def columns(ratings: dict[str, dict[int, float]]) -> RatingColumns:
    users = tuple(ratings)
    triples = [(code, book, stars) for code, user in enumerate(users) for book, stars in ratings[user].items()]
    codes, books, stars = zip(*triples) if triples else ((), (), ())
    return RatingColumns(users, np.asarray(codes, np.int32), np.asarray(books, np.int32), np.asarray(stars, np.float32))


def snapshot_of(ratings: dict[str, dict[int, float]], params: RecommenderParams = PLAIN) -> ModelSnapshot:
    return ModelSnapshot.build(columns(ratings), params)


def recommend(snapshot: ModelSnapshot, users: list[str], params: RecommenderParams = PLAIN,
              fresh: dict[str, list[Rating]] | None = None) -> list[list[tuple[int, RecommendationSource]]]:
    lists = Recommender(params).recommend_batch(snapshot, users, fresh or {})
    return [[(item.book_id, item.source) for item in items] for items in lists]


def fresh_ratings(user: str, books: dict[int, int]) -> list[Rating]:
    return [Rating(user, book, stars, RATED_AT) for book, stars in books.items()]


# alice's nearest neighbour is bob (three books in common); carol shares only book 3.
NEIGHBOURHOOD = {
    "alice": {1: 5, 2: 5, 3: 5},
    "bob": {1: 5, 2: 5, 3: 5, 4: 5},
    "carol": {3: 5, 5: 5, 6: 5, 7: 5},
    "dave": {8: 4},
    "erin": {8: 4, 9: 2},
}


def test_the_nearest_neighbours_favourite_comes_first() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [alice] = recommend(snapshot, ["alice"])

    # bob's weight (cos = 3/sqrt(12) = 0.87) beats carol's (1/sqrt(12) = 0.29): book 4 first, then
    # carol's books 5, 6, 7 (equal evidence, so by id), then the rest by popularity.
    assert alice[:4] == [(4, CF), (5, CF), (6, CF), (7, CF)]
    assert alice[4:] == [(8, POPULAR), (9, POPULAR)]


def test_collaborative_scores_are_the_neighbours_weighted_share() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [items] = Recommender(PLAIN).recommend_batch(snapshot, ["alice"], {})

    bob, carol = 3 / np.sqrt(12), 1 / np.sqrt(12)
    assert items[0].score == pytest.approx(bob / (bob + carol), abs=1e-6)
    assert items[1].score == pytest.approx(carol / (bob + carol), abs=1e-6)
    assert items[4].score == pytest.approx(2 / 5)  # book 8: rated by 2 of 5 users


def test_books_the_user_rated_are_never_recommended() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [alice] = recommend(snapshot, ["alice"])

    assert {1, 2, 3}.isdisjoint(book for book, _ in alice)


def test_a_fresh_rating_missing_from_the_snapshot_is_excluded_at_once() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)
    fresh = {"alice": fresh_ratings("alice", {1: 5, 2: 5, 3: 5, 4: 2})}

    [alice] = recommend(snapshot, ["alice"], fresh=fresh)

    assert 4 not in [book for book, _ in alice]
    assert alice[0] == (5, CF)


def test_fresh_ratings_replace_the_snapshot_row() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)
    # alice now reads like carol: her snapshot books no longer count, carol is her only neighbour.
    fresh = {"alice": fresh_ratings("alice", {5: 5, 6: 5})}

    [alice] = recommend(snapshot, ["alice"], fresh=fresh)

    assert alice[:2] == [(3, CF), (7, CF)]
    assert (1, POPULAR) in alice and (4, POPULAR) in alice


def test_a_user_whose_fresh_ratings_are_empty_gets_popular_books() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [alice] = recommend(snapshot, ["alice"], fresh={"alice": []})

    assert alice[:3] == [(3, POPULAR), (1, POPULAR), (2, POPULAR)]  # 3 has three readers; 1 and 2 tie at two
    assert all(source is POPULAR for _, source in alice)


def test_fresh_ratings_of_books_the_snapshot_never_saw_are_ignored() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)
    fresh = {"alice": fresh_ratings("alice", {1: 5, 2: 5, 3: 5, 999: 5})}

    assert recommend(snapshot, ["alice"], fresh=fresh) == recommend(snapshot, ["alice"])


def test_an_unknown_user_gets_the_popularity_ranking() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [stranger] = recommend(snapshot, ["stranger"])

    assert not snapshot.has_user("stranger")
    assert stranger == [(book, POPULAR) for book in snapshot.popular_book_ids(50)]
    assert snapshot.popular_book_ids(3) == [3, 1, 2]


def test_a_new_user_with_fresh_ratings_gets_collaborative_recommendations() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [newcomer] = recommend(snapshot, ["newcomer"], fresh={"newcomer": fresh_ratings("newcomer", {1: 5, 2: 5})})

    assert newcomer[:2] == [(3, CF), (4, CF)]  # bob has both books and alice has them too


def test_a_user_with_too_few_neighbours_gets_popular_books() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD, replace(PLAIN, min_neighbours=2))
    params = replace(PLAIN, min_neighbours=2)

    dave, alice = recommend(snapshot, ["dave", "alice"], params)

    # dave's only neighbour is erin; alice has bob and carol.
    assert all(source is POPULAR for _, source in dave)
    assert 8 not in [book for book, _ in dave]
    assert alice[0] == (4, CF)


def test_the_users_own_snapshot_row_is_never_its_neighbour() -> None:
    snapshot = snapshot_of({"zed": {1: 5, 2: 5}, "yan": {3: 4}})
    # zed's fresh row (book 1 only) is similar to zed's own snapshot row, which holds book 2.
    [zed] = recommend(snapshot, ["zed"], fresh={"zed": fresh_ratings("zed", {1: 5})})

    assert all(source is POPULAR for _, source in zed)


def test_equal_scores_go_to_the_lower_book_id() -> None:
    # Ratings arrive in descending book order so the answer cannot come from insertion order.
    snapshot = snapshot_of({"ann": {30: 4, 1: 4}, "ben": {30: 4, 1: 4, 20: 5, 10: 5}})

    [ann] = recommend(snapshot, ["ann"])

    assert ann == [(10, CF), (20, CF)]


def test_equal_popularity_goes_to_the_lower_book_id() -> None:
    snapshot = snapshot_of({"a": {7: 3, 5: 3, 9: 3}, "b": {9: 3, 2: 1}})

    assert snapshot.popular_book_ids(10) == [9, 2, 5, 7]


def test_the_same_call_twice_gives_identical_lists() -> None:
    snapshot = snapshot_of(random_ratings(seed=3))
    users = list(snapshot.user_ids)
    recommender = Recommender(replace(PLAIN, neighbours=5))

    assert recommender.recommend_batch(snapshot, users, {}) == recommender.recommend_batch(snapshot, users, {})


def random_ratings(seed: int, n_users: int = 60, n_books: int = 40) -> dict[str, dict[int, float]]:
    """Small random data with many ties: few stars, few books, some users with one rating."""
    rng = np.random.default_rng(seed)
    ratings = {}
    for user in range(n_users):
        count = int(rng.integers(1, 12))
        books = rng.choice(np.arange(1, n_books + 1) * 3, size=count, replace=False)
        ratings[f"u{user}"] = {int(book): float(rng.integers(1, 6)) for book in books}
    return ratings


VARIANTS = [
    PLAIN,
    RecommenderParams(neighbours=5, min_neighbours=2, shrinkage=3.0, similarity="rating", aggregation="rating"),
    RecommenderParams(neighbours=5, min_neighbours=1, shrinkage=2.0, similarity="binary", aggregation="liked"),
    RecommenderParams(neighbours=8, min_neighbours=3, shrinkage=0.0, mean_centre=True, popularity="liked"),
    RecommenderParams(neighbours=4, min_neighbours=1, shrinkage=5.0, popularity_discount=0.5, max_recommendations=7),
]


@pytest.mark.parametrize("params", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_equals_its_users_one_by_one(params: RecommenderParams, seed: int) -> None:
    snapshot = snapshot_of(random_ratings(seed), params)
    users = [*snapshot.user_ids, "unknown", "newcomer"]
    fresh = {
        "u0": fresh_ratings("u0", {3: 5, 6: 4}),
        "u1": [],
        "newcomer": fresh_ratings("newcomer", {9: 5, 12: 1, 15: 4}),
    }
    recommender = Recommender(params)

    batch = recommender.recommend_batch(snapshot, users, fresh)
    one_by_one = [recommender.recommend_batch(snapshot, [user], fresh)[0] for user in users]

    assert batch == one_by_one
    assert {item.source for items in batch for item in items} == {CF, POPULAR}


@pytest.mark.parametrize("params", VARIANTS)
def test_lists_are_ordered_full_length_and_never_repeat_a_book(params: RecommenderParams) -> None:
    ratings = random_ratings(seed=4)
    snapshot = snapshot_of(ratings, params)

    lists = Recommender(params).recommend_batch(snapshot, list(snapshot.user_ids), {})

    for user, items in zip(snapshot.user_ids, lists):
        books = [item.book_id for item in items]
        assert len(books) == min(params.max_recommendations, snapshot.n_books - len(ratings[user]))
        assert len(set(books)) == len(books) and not set(books) & set(ratings[user])
        sources = [item.source for item in items]
        assert sources == sorted(sources, key=lambda source: source is POPULAR)  # collaborative first
        for source in (CF, POPULAR):
            scores = [item.score for item in items if item.source is source]
            assert scores == sorted(scores, reverse=True)


def test_max_recommendations_bounds_every_list() -> None:
    params = replace(PLAIN, max_recommendations=3)
    snapshot = snapshot_of(NEIGHBOURHOOD, params)

    lists = recommend(snapshot, ["alice", "stranger"], params)

    assert [len(items) for items in lists] == [3, 3]


def test_a_short_collaborative_list_is_filled_with_popular_books() -> None:
    snapshot = snapshot_of(NEIGHBOURHOOD)

    [dave] = recommend(snapshot, ["dave"])

    assert dave[0] == (9, CF)  # erin's other book
    assert dave[1:] == [(3, POPULAR), (1, POPULAR), (2, POPULAR), (4, POPULAR), (5, POPULAR), (6, POPULAR), (7, POPULAR)]


def test_shrinkage_prefers_the_neighbour_with_more_books_in_common() -> None:
    ratings = {
        "u": {1: 5, 2: 5, 3: 5, 4: 5, 5: 5, 6: 5, 7: 5, 8: 5},
        # v shares one book with u and rated little else: cosine 1/sqrt(8 * 2) = 0.25.
        "v": {1: 5, 100: 5},
        # w shares four books but read widely: cosine 4/sqrt(8 * 36) = 0.24.
        "w": {1: 5, 2: 5, 3: 5, 4: 5, **{book: 5 for book in range(201, 233)}},
    }
    plain = replace(PLAIN, neighbours=1)
    shrunk = replace(plain, shrinkage=10.0)

    [[first_plain, *_]] = recommend(snapshot_of(ratings, plain), ["u"], plain)
    [[first_shrunk, *_]] = recommend(snapshot_of(ratings, shrunk), ["u"], shrunk)

    assert first_plain == (100, CF)
    assert first_shrunk == (201, CF)


@pytest.mark.parametrize("similarity", ["rating", "binary"])
def test_shrinkage_counts_the_books_in_common(similarity: str) -> None:
    # With one neighbour the share is 1 whatever the weight, so look at the weights through two.
    ratings = {"u": {1: 5, 2: 5, 3: 5}, "v": {1: 5, 2: 5, 3: 5, 10: 5}, "w": {1: 5, 11: 5}}
    params = replace(PLAIN, shrinkage=2.0, similarity=similarity)

    [items] = Recommender(params).recommend_batch(snapshot_of(ratings, params), ["u"], {})

    v = 3 / np.sqrt(12) * 3 / (3 + 2)
    w = 1 / np.sqrt(6) * 1 / (1 + 2)
    assert [item.book_id for item in items[:2]] == [10, 11]
    assert items[0].score == pytest.approx(v / (v + w), abs=1e-6)


def test_mean_centring_drops_a_neighbour_with_opposite_taste() -> None:
    ratings = {"alice": {1: 5, 2: 1}, "bob": {1: 1, 2: 5, 3: 5}}
    raw = replace(PLAIN, mean_centre=False)
    centred = replace(PLAIN, mean_centre=True)

    [[first_raw, *_]] = recommend(snapshot_of(ratings, raw), ["alice"], raw)
    [[first_centred, *_]] = recommend(snapshot_of(ratings, centred), ["alice"], centred)

    assert first_raw == (3, CF)  # raw cosine of (5, 1) and (1, 5) is positive
    assert first_centred == (3, POPULAR)  # centred, they point opposite ways


def test_popularity_by_likes_ranks_loved_books_above_merely_read_ones() -> None:
    ratings = {"a": {1: 2, 2: 5}, "b": {1: 1, 2: 4}, "c": {1: 2, 3: 5}}

    by_count = snapshot_of(ratings, replace(PLAIN, popularity="count"))
    by_likes = snapshot_of(ratings, replace(PLAIN, popularity="liked"))

    assert by_count.popular_book_ids(3) == [1, 2, 3]
    assert by_likes.popular_book_ids(3) == [2, 3, 1]


def test_the_popularity_discount_lifts_the_rarer_of_two_neighbour_books() -> None:
    ratings = {
        "u": {1: 5},
        "v": {1: 5, 2: 5, 3: 5},  # u's only neighbour read 2 and 3 ...
        **{f"fan{i}": {2: 5} for i in range(5)},  # ... and 2 is a bestseller
    }
    discounted = replace(PLAIN, popularity_discount=0.5)

    assert recommend(snapshot_of(ratings), ["u"])[0][:2] == [(2, CF), (3, CF)]  # tie, by id
    assert recommend(snapshot_of(ratings, discounted), ["u"], discounted)[0][:2] == [(3, CF), (2, CF)]


def test_an_empty_snapshot_recommends_nothing() -> None:
    snapshot = ModelSnapshot.empty()

    assert (snapshot.n_users, snapshot.n_books, snapshot.n_ratings, snapshot.user_ids) == (0, 0, 0, ())
    assert snapshot.popular_book_ids(10) == []
    assert not snapshot.has_user("anyone")
    assert Recommender(RecommenderParams()).recommend_batch(snapshot, ["anyone", "else"], {}) == [(), ()]
    assert Recommender(RecommenderParams()).recommend_batch(snapshot, [], {}) == []


def test_a_repeated_rating_keeps_the_last_one() -> None:
    repeated = RatingColumns(
        ("a", "b"),
        np.array([0, 0, 1, 0], np.int32),
        np.array([1, 2, 1, 1], np.int32),
        np.array([5, 3, 4, 1], np.float32),
    )

    snapshot = ModelSnapshot.build(repeated, PLAIN)

    assert snapshot.n_ratings == 3
    assert snapshot.ratings.toarray().tolist() == [[1.0, 3.0], [4.0, 0.0]]


def test_the_version_names_the_content() -> None:
    first = snapshot_of(NEIGHBOURHOOD)
    same = snapshot_of(NEIGHBOURHOOD)
    changed = snapshot_of({**NEIGHBOURHOOD, "dave": {8: 5}})

    assert first.version == same.version != changed.version
    assert len(first.version) == 16


@pytest.mark.parametrize(
    "bad",
    [
        {"neighbours": 0},
        {"min_neighbours": 0},
        {"neighbours": 5, "min_neighbours": 6},
        {"shrinkage": -1.0},
        {"max_recommendations": 0},
        {"similarity": "jaccard"},
        {"similarity": "binary", "mean_centre": True},
        {"aggregation": "max"},
        {"popularity": "recent"},
        {"popularity_discount": 1.5},
    ],
)
def test_params_reject_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RecommenderParams(**bad)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10, 60])
def test_top_k_per_column_matches_a_full_sort(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-2, 4, size=(500, 7)).astype(np.float32)  # many ties, some at or below the floor
    values[:, 3] = -np.inf

    columns, rows = top_k_per_column(values, k, floor=0.0)

    expected = []
    for column in range(values.shape[1]):
        above = [row for row in np.lexsort((np.arange(500), -values[:, column])) if values[row, column] > 0]
        expected += [(column, row) for row in above[:k]]
    assert list(zip(columns.tolist(), rows.tolist())) == expected


@pytest.mark.parametrize("params", VARIANTS[:2])
def test_both_product_kernels_give_identical_lists(params: RecommenderParams, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches multiply only their books' columns, large ones the whole matrix (GATHER_SHARE);
    # a user's list must not depend on which one its batch took.
    snapshot = snapshot_of(random_ratings(seed=5), params)
    users = list(snapshot.user_ids)
    recommender = Recommender(params)

    monkeypatch.setattr(recommender_module, "GATHER_SHARE", 0.0)
    whole = recommender.recommend_batch(snapshot, users, {})
    monkeypatch.setattr(recommender_module, "GATHER_SHARE", 2.0)
    gathered = recommender.recommend_batch(snapshot, users, {})

    assert whole == gathered
