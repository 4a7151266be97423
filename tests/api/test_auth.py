"""Who may call which mutation: the token matrix. Queries need no token."""

from __future__ import annotations

import time
import warnings

import jwt
import pytest

from graphql_api.auth import TokenAuthority
from tests.api.conftest import SECRET, Api

RATE_ALICE = 'mutation { rateBook(userId: "alice", bookId: "30", rating: 4) { rating { rating } } }'
INVALIDATE = 'mutation { invalidateRecommendations(userId: "alice") }'
REFRESH = 'mutation { refreshRecommendations(userIds: ["alice"]) { id } }'


def signed(claims: dict, *, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():  # the test secret is short for HS512, which is the point of that case
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, SECRET, algorithm=algorithm)


def in_an_hour() -> int:
    return int(time.time()) + 3600


BAD_TOKENS = {
    "garbage": "not-a-jwt",
    "expired": TokenAuthority(SECRET).issue("alice", ttl_seconds=-10),
    "alg none": jwt.encode({"sub": "alice", "exp": in_an_hour()}, None, algorithm="none"),
    "other key": TokenAuthority("another-secret-that-is-also-32-bytes-long").issue("alice", admin=True),
    "HS512 with the right key": signed({"sub": "alice", "exp": in_an_hour()}, algorithm="HS512"),
    "no exp": signed({"sub": "alice"}),
    "no sub": signed({"exp": in_an_hour(), "roles": ["admin"]}),
    "numeric sub": signed({"sub": 42, "exp": in_an_hour()}),
    "tampered": TokenAuthority(SECRET).issue("alice")[:-4] + "AAAA",
}


async def post(api: Api, query: str, authorization: str | None) -> dict:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200
    return response.json()


def only_code(body: dict) -> str:
    assert body["data"] is None
    [error] = body["errors"]
    return error["extensions"]["code"]


@pytest.mark.parametrize("mutation", [RATE_ALICE, INVALIDATE, REFRESH])
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", *(f"Bearer {token}" for token in BAD_TOKENS.values())],
    ids=["no header", "empty", "no token", "blank token", "basic auth", *BAD_TOKENS],
)
async def test_a_missing_or_invalid_token_is_unauthenticated(api: Api, mutation: str, authorization: str | None) -> None:
    assert only_code(await post(api, mutation, authorization)) == "UNAUTHENTICATED"
    assert api.ratings.calls["upsert"] == 0
    assert api.cache.calls["delete_many"] == 0


async def test_a_user_may_rate_only_as_themselves(api: Api) -> None:
    assert only_code(await post(api, RATE_ALICE, f"Bearer {api.token('bob')}")) == "FORBIDDEN"
    assert api.ratings.calls["upsert"] == 0
    body = await post(api, RATE_ALICE, f"Bearer {api.token('alice')}")
    assert body == {"data": {"rateBook": {"rating": {"rating": 4}}}}


async def test_an_admin_may_rate_for_anyone(api: Api) -> None:
    body = await post(api, RATE_ALICE, f"bearer {api.token('root', admin=True)}")
    assert body == {"data": {"rateBook": {"rating": {"rating": 4}}}}


@pytest.mark.parametrize("mutation", [INVALIDATE, REFRESH])
async def test_admin_mutations_are_forbidden_to_users_even_for_themselves(api: Api, mutation: str) -> None:
    assert only_code(await post(api, mutation, f"Bearer {api.token('alice')}")) == "FORBIDDEN"
    roles_not_a_list = signed({"sub": "alice", "exp": in_an_hour(), "roles": "admin"})
    assert only_code(await post(api, mutation, f"Bearer {roles_not_a_list}")) == "FORBIDDEN"
    assert api.cache.calls["delete_many"] == 0


@pytest.mark.parametrize("mutation", [INVALIDATE, REFRESH])
async def test_admin_mutations_are_allowed_to_admins(api: Api, mutation: str) -> None:
    body = await post(api, mutation, f"Bearer {api.token('root', admin=True)}")
    assert "errors" not in body


async def test_queries_are_anonymous_and_ignore_a_bad_token(api: Api) -> None:
    query = '{ user(id: "alice") { recommendations(limit: 1) { score } } popularBooks(limit: 1) { id } }'
    assert "errors" not in await post(api, query, None)
    assert "errors" not in await post(api, query, "Bearer not-a-jwt")
