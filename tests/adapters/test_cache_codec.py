"""The cache envelope: a faithful round trip, and None (never an exception) for anything else."""

from __future__ import annotations

import random

import orjson
import pytest

from adapters import cache_codec
from domain.models import Recommendation, RecommendationList, RecommendationSource


def sample(user_id: str = "58") -> RecommendationList:
    return RecommendationList(
        user_id,
        (Recommendation(11, 4.25, RecommendationSource.COLLABORATIVE), Recommendation(2, 3.0, RecommendationSource.POPULAR)),
        "v-abc",
        1_700_000_000.5,
    )


def test_round_trip() -> None:
    assert cache_codec.decode(cache_codec.encode(sample()), "58") == sample()


def test_a_decode_of_the_first_items_is_the_list_cut_there() -> None:
    value = sample()
    for items in (0, 1, 2, 5):
        decoded = cache_codec.decode(cache_codec.encode(value), "58", items)
        assert decoded == RecommendationList("58", value.items[:items], value.model_version, value.computed_at)


def test_the_envelope_has_the_documented_fields_and_leaves_the_user_to_the_key() -> None:
    envelope = orjson.loads(cache_codec.encode(sample()))

    assert envelope == {
        "v": cache_codec.FORMAT_VERSION,
        "computed_at": 1_700_000_000.5,
        "model_version": "v-abc",
        "book_ids": [11, 2],
        "scores": [4.25, 3.0],
        "sources": ["COLLABORATIVE", "POPULAR"],
    }


def test_the_key_names_the_user_exactly() -> None:
    assert cache_codec.cache_key("58") == "reco:58"
    assert cache_codec.cache_key("a b:ü") == "reco:a b:ü"


def test_a_lease_placeholder_is_never_a_value() -> None:
    token = cache_codec.new_lease_token()
    placeholder = cache_codec.lease_placeholder(token)

    assert cache_codec.is_lease_placeholder(placeholder)
    assert not cache_codec.is_lease_placeholder(cache_codec.encode(sample()))
    assert cache_codec.decode(placeholder, "58") is None
    assert token != cache_codec.new_lease_token()


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"null",
        b"42",
        b'"text"',
        b'{"v": true, "computed_at": 1, "model_version": "m", "book_ids": [], "scores": [], "sources": []}',
        b'{"v": 2, "computed_at": "yesterday", "model_version": "m", "book_ids": [], "scores": [], "sources": []}',
        b'{"v": 2, "computed_at": 1, "model_version": 7, "book_ids": [], "scores": [], "sources": []}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": {}, "scores": [], "sources": []}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [1.0], "sources": "POPULAR"}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [1.0]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1, 2], "scores": [1.0], "sources": ["POPULAR"]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [1.0, 2.0], "sources": ["POPULAR"]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [1.0], "sources": []}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [true], "scores": [1], "sources": ["POPULAR"]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [null], "sources": ["POPULAR"]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [false], "sources": ["POPULAR"]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [1], "sources": [["POPULAR"]]}',
        b'{"v": 2, "computed_at": 1, "model_version": "m", "book_ids": [1], "scores": [1], "sources": ["EDITORIAL"]}',
        # Version 1, an object per item: read as a miss, so the adapter drops it and it is recomputed.
        b'{"v": 1, "computed_at": 1, "model_version": "m", "items": [{"book_id": 1, "score": 1.0, "source": "POPULAR"}]}',
    ],
)
def test_anything_but_a_current_envelope_decodes_to_none(raw: bytes | None) -> None:
    assert cache_codec.decode(raw, "58") is None
    assert cache_codec.decode(raw, "58", 1) is None  # the array lengths are checked before the cut too


def test_random_bytes_and_truncations_never_raise() -> None:
    rng = random.Random(20240601)
    encoded = cache_codec.encode(sample())
    candidates = [encoded[:cut] for cut in range(len(encoded))]
    candidates += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64))) for _ in range(500)]

    assert all(cache_codec.decode(raw, "58") is None for raw in candidates)
