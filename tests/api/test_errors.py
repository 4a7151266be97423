"""Every error carries extensions.code; unexpected ones are masked for the client and logged with their stack."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from domain.models import StoreUnavailable
from graphql_api.bootstrap import Stores
from tests.api.conftest import Api, Failing

INTERNALS = "db-7.internal:5432 password=hunter2"


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


async def test_a_syntax_error_is_graphql_parse_failed(api: Api) -> None:
    body = await api.gql('{ user(id: "alice") { recommendations { ')
    assert body["data"] is None
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert body["errors"][0]["message"].startswith("Syntax Error")


async def test_an_invalid_document_is_graphql_validation_failed_also_when_cached(api: Api) -> None:
    for _ in range(2):  # the second answer comes from the validation cache
        body = await api.gql('{ user(id: "alice") { nickname } books { id } }')
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED", "GRAPHQL_VALIDATION_FAILED"]


async def test_variables_of_the_wrong_type_are_bad_user_input(api: Api) -> None:
    query = "query($limit: Int!) { popularBooks(limit: $limit) { id } }"
    assert codes(await api.gql(query, {"limit": "ten"})) == ["BAD_USER_INPUT"]
    assert codes(await api.gql(query, {})) == ["BAD_USER_INPUT"]
    assert codes(await api.gql("query($ids: [ID!]!) { users(ids: $ids) { id } }", {"ids": [None]})) == ["BAD_USER_INPUT"]


async def test_more_than_30_aliases_is_graphql_validation_failed(api: Api) -> None:
    within = " ".join(f'u{n}: user(id: "{n}") {{ id }}' for n in range(30))
    assert "errors" not in await api.gql(f"{{ {within} }}")
    beyond = " ".join(f'u{n}: user(id: "{n}") {{ id }}' for n in range(31))
    assert codes(await api.gql(f"{{ {beyond} }}")) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_a_document_of_more_than_2000_tokens_is_refused_while_parsing(api: Api) -> None:
    body = await api.gql("{ " + "popularBooks { id } " * 500 + "}")  # 2002 tokens
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert "tokens" in body["errors"][0]["message"]


async def test_introspection_and_field_suggestions_are_off_outside_debug(api: Api) -> None:
    introspection = await api.gql("{ __schema { types { name } } }")
    assert introspection["data"] is None
    assert set(codes(introspection)) == {"GRAPHQL_VALIDATION_FAILED"}
    body = await api.gql("{ popularBook { id } }")
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Did you mean" not in body["errors"][0]["message"]


class TestAnUnexpectedFailure:
    @pytest.fixture
    def wrap_stores(self) -> Callable[[Stores], Stores]:
        return lambda stores: Stores(stores.ratings, Failing(stores.catalog, RuntimeError(INTERNALS), "get_many"))

    async def test_is_masked_for_the_client_and_logged_with_its_stack(self, api: Api, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.ERROR, logger="bookrec.graphql"):
            response = await api.client.post("/graphql", json={"query": '{ book(id: "3") { title } }'})
        assert response.status_code == 200
        assert response.json() == {
            "data": {"book": None},
            "errors": [
                {
                    "message": "Internal server error",
                    "locations": [{"line": 1, "column": 3}],
                    "path": ["book"],
                    "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                }
            ],
        }
        assert "hunter2" not in response.text and "Traceback" not in response.text
        [record] = [record for record in caplog.records if record.name == "bookrec.graphql"]
        assert record.exc_info is not None and record.exc_info[1].args == (INTERNALS,)
        assert "book" in record.getMessage()


class TestAStoreThatStaysDown:
    @pytest.fixture
    def wrap_stores(self) -> Callable[[Stores], Stores]:
        down = StoreUnavailable(f"throttled after 8 retries at {INTERNALS}")
        return lambda stores: Stores(Failing(stores.ratings, down, "upsert", "get_many"), stores.catalog)

    async def test_is_service_unavailable_without_internals_on_reads(self, api: Api) -> None:
        response = await api.client.post("/graphql", json={"query": '{ user(id: "alice") { ratings { rating } } }'})
        body = response.json()
        assert body["data"] is None
        assert codes(body) == ["SERVICE_UNAVAILABLE"]
        assert body["errors"][0]["message"] == "A data store is unavailable; try again shortly"
        assert "hunter2" not in response.text

    async def test_is_service_unavailable_on_writes_and_voids_the_cached_list(self, api: Api) -> None:
        """The failed write may have been applied with its answer lost: the cached list must not outlive it."""
        response = await api.client.post(
            "/graphql",
            json={"query": 'mutation { rateBook(userId: "alice", bookId: "30", rating: 4) { rating { rating } } }'},
            headers={"Authorization": f"Bearer {api.token('alice')}"},
        )
        body = response.json()
        assert body["data"] is None
        assert codes(body) == ["SERVICE_UNAVAILABLE"]
        assert "hunter2" not in response.text
        assert api.cache.calls["delete_many"] == 1


async def test_a_mutation_over_get_is_refused_with_405_and_a_code(api: Api) -> None:
    response = await api.client.get(
        "/graphql",
        params={"query": 'mutation { invalidateRecommendations(userId: "alice") }'},
        headers={"Authorization": f"Bearer {api.token('root', admin=True)}"},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {
        "errors": [{"message": "mutations are not allowed when using GET", "extensions": {"code": "BAD_REQUEST"}}]
    }
    assert api.cache.calls["delete_many"] == 0


async def test_a_query_over_get_is_answered(api: Api) -> None:
    response = await api.client.get("/graphql", params={"query": "{ popularBooks(limit: 1) { id } }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"popularBooks": [{"id": "1"}]}}


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [(b"{not json", "application/json", 400), (b"query=x", "text/plain", 400), (b"[]", "application/json", 400)],
)
async def test_a_malformed_request_is_a_coded_json_error(api: Api, content: bytes, content_type: str, status: int) -> None:
    response = await api.client.post("/graphql", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}


async def test_other_methods_are_refused(api: Api) -> None:
    response = await api.client.put("/graphql", json={"query": "{ popularBooks { id } }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
