"""The bytes a cached RecommendationList is stored as, and the lease placeholder that shares its key.

Both cache adapters store these bytes, so an operator's `redis-cli GET reco:58` shows
the same envelope whichever adapter wrote it. Decoding never raises: a value written
by another format version, or damaged, is a miss and gets recomputed.
"""

from __future__ import annotations

import secrets
from typing import TypeVar, cast

import orjson

from domain.models import Recommendation, RecommendationList, RecommendationSource

FORMAT_VERSION = 1
KEY_PREFIX = "reco:"
# An envelope is a JSON object and starts with "{", so this prefix can never be mistaken for one.
LEASE_PREFIX = b"lease:"

T = TypeVar("T")

_SOURCES = {source.value: source for source in RecommendationSource}


def cache_key(user_id: str) -> str:
    """`reco:{user_id}`, the key format operators already use."""
    return KEY_PREFIX + user_id


def new_lease_token() -> str:
    """A token no other holder can guess, so only the holder's fill matches the placeholder."""
    return secrets.token_urlsafe(12)


def lease_placeholder(token: str) -> bytes:
    """What a key holds while its lease holder computes the value."""
    return LEASE_PREFIX + token.encode()


def is_lease_placeholder(raw: bytes) -> bool:
    return raw.startswith(LEASE_PREFIX)


def encode(value: RecommendationList) -> bytes:
    """The envelope; the user id is left out because the key already names it."""
    return orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "computed_at": float(value.computed_at),
            "model_version": value.model_version,
            "items": [
                {"book_id": int(item.book_id), "score": float(item.score), "source": item.source.value}
                for item in value.items
            ],
        }
    )


def decode(raw: bytes | None, user_id: str) -> RecommendationList | None:
    """The list stored under `user_id`'s key, or None for absent, leased, corrupt or other-version bytes."""
    if not raw or is_lease_placeholder(raw):
        return None
    try:
        envelope = orjson.loads(raw)
        if _typed(envelope["v"], int) != FORMAT_VERSION:
            return None
        items = tuple(
            Recommendation(_typed(item["book_id"], int), _number(item["score"]), _SOURCES[item["source"]])
            for item in _typed(envelope["items"], list)
        )
        model_version = _typed(envelope["model_version"], str)
        return RecommendationList(user_id, items, model_version, _number(envelope["computed_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _typed(value: object, expected: type[T]) -> T:
    # An exact type check: bool is an int in Python, but a JSON true is no version or book id.
    if type(value) is not expected:
        raise TypeError(f"expected {expected.__name__}, got {value!r}")
    return cast(T, value)


def _number(value: object) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
