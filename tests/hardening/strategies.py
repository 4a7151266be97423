"""Hypothesis strategies for requests to /graphql: operations generated from the schema, operations with
random variables, and requests that are not GraphQL at all.

Operations come from schemathesis's GraphQL support (hypothesis-graphql underneath),
loaded from the SDL offline, so production's closed introspection does not matter.
Documents with variables are built here from the same schema with graphql-core,
because the generated operations inline every argument.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

import orjson
import schemathesis
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
)
from hypothesis import strategies as st

from graphql_api.auth import TokenAuthority
from graphql_api.schema import build_schema, schema_sdl
from tests.api.conftest import SECRET

SCHEMA: GraphQLSchema = build_schema()._schema
GENERATED = schemathesis.graphql.from_file(schema_sdl())
OPERATIONS = [result.ok() for result in GENERATED.get_all_operations()]

_tokens = TokenAuthority(SECRET)
AUTHORIZATIONS: list[str | None] = [
    None,
    f"Bearer {_tokens.issue('alice')}",
    f"Bearer {_tokens.issue('root', admin=True)}",
    f"Bearer {TokenAuthority('some-other-secret-of-32-bytes-or-more').issue('alice', admin=True)}",
    "Bearer not-a-jwt",
    "Basic YWxpY2U6cHc=",
]
KNOWN_IDS = ["alice", "bob", "grace", "nobody", "1", "30", "160", "161", "0", "-1", "00000001"]


@dataclass(frozen=True)
class HttpRequest:
    """One request to /graphql; `text` is what a leak check may find echoed (its body and query string)."""

    method: str = "POST"
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace") + " ".join(self.params.values())

    @classmethod
    def graphql(cls, payload: Any, authorization: str | None) -> HttpRequest:
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        return cls(content=orjson.dumps(payload), headers=headers)


# JSON of every kind, for variables, for extensions, and for bodies of the wrong shape.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=20,
)


def schema_operations() -> st.SearchStrategy[HttpRequest]:
    """Every query and mutation field with generated arguments and selections, under every kind of token."""
    documents = st.one_of([operation.as_strategy() for operation in OPERATIONS]).map(lambda case: case.body)
    return st.builds(
        lambda document, authorization: HttpRequest.graphql({"query": document}, authorization),
        documents,
        st.sampled_from(AUTHORIZATIONS),
    )


def _value(input_type: GraphQLInputType) -> st.SearchStrategy[Any]:
    """Values of the right type (often at and past their bounds), and now and then of any other."""
    if isinstance(input_type, GraphQLNonNull):
        return _value(input_type.of_type) | st.none()
    if isinstance(input_type, GraphQLList):
        return st.lists(_value(input_type.of_type), max_size=120) | _value(input_type.of_type)
    typed: st.SearchStrategy[Any]
    if isinstance(input_type, GraphQLScalarType) and input_type.name == "Int":
        typed = st.integers(min_value=-(2**40), max_value=2**40) | st.sampled_from([0, 1, 5, 50, 51, 100, 101, 2**31])
    elif isinstance(input_type, GraphQLScalarType) and input_type.name == "ID":
        typed = st.sampled_from(KNOWN_IDS) | st.text(max_size=40) | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    elif isinstance(input_type, GraphQLEnumType):
        typed = st.sampled_from(list(input_type.values))
    else:
        typed = json_scalars
    return st.one_of(typed, typed, typed, any_json)


def _selection(object_type: GraphQLObjectType, depth: int = 3) -> str:
    """Every leaf of the type, and the leaves of its object fields down to `depth` levels."""
    parts = []
    for name, graphql_field in object_type.fields.items():
        named = get_named_type(graphql_field.type)
        if is_leaf_type(named):
            parts.append(name)
        elif depth > 1 and isinstance(named, GraphQLObjectType) and _optional_args(graphql_field):
            parts.append(f"{name} {_selection(named, depth - 1)}")
    return "{ " + " ".join(parts) + " }"


def _optional_args(graphql_field: GraphQLField) -> bool:
    return all(not isinstance(argument.type, GraphQLNonNull) for argument in graphql_field.args.values())


def _operation_template(kind: str, name: str, graphql_field: GraphQLField) -> tuple[str, dict[str, GraphQLInputType]]:
    variables = {argument: graphql_field.args[argument].type for argument in graphql_field.args}
    definitions = ", ".join(f"${argument}: {input_type}" for argument, input_type in variables.items())
    arguments = ", ".join(f"{argument}: ${argument}" for argument in variables)
    named = get_named_type(graphql_field.type)
    selection = _selection(named) if isinstance(named, GraphQLObjectType) else ""
    return f"{kind} ({definitions}) {{ {name}({arguments}) {selection} }}", variables


TEMPLATES = [
    _operation_template(kind, name, graphql_field)
    for kind, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type))
    if root is not None
    for name, graphql_field in root.fields.items()
    if graphql_field.args
]


def operations_with_variables() -> st.SearchStrategy[HttpRequest]:
    """Each root field with arguments as a document with variables, and random values for them."""

    def request(template: tuple[str, dict[str, GraphQLInputType]]) -> st.SearchStrategy[HttpRequest]:
        document, variables = template
        values = st.fixed_dictionaries({}, optional={name: _value(input_type) for name, input_type in variables.items()})
        return st.builds(
            lambda chosen, authorization: HttpRequest.graphql({"query": document, "variables": chosen}, authorization),
            values | any_json,
            st.sampled_from(AUTHORIZATIONS),
        )

    return st.one_of([request(template) for template in TEMPLATES])


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "text/plain",
    "application/graphql",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "",
]


def _nested_document(depth: int) -> str:
    return "{" + "popularBooks {" * depth + "id" + "}" * depth + "}"


def not_graphql() -> st.SearchStrategy[HttpRequest]:
    """Random bytes, malformed JSON, wrong shapes and content types, huge and deeply nested documents, odd methods."""
    random_bytes = st.builds(
        lambda content, content_type: HttpRequest(content=content, headers={"Content-Type": content_type}),
        st.binary(max_size=2_000),
        st.sampled_from(CONTENT_TYPES),
    )
    malformed_json = st.builds(
        lambda text, content_type: HttpRequest(content=text.encode(), headers={"Content-Type": content_type}),
        st.text(alphabet=string.printable, max_size=200).map(lambda text: "{" + text) | st.text(max_size=200),
        st.sampled_from(CONTENT_TYPES),
    )
    wrong_shapes = st.builds(
        lambda payload: HttpRequest.graphql(payload, None),
        any_json
        | st.fixed_dictionaries(
            {},
            optional={
                "query": any_json | st.text(max_size=300),
                "variables": any_json,
                "operationName": any_json,
                "extensions": any_json
                | st.fixed_dictionaries({"persistedQuery": st.fixed_dictionaries({}, optional={"version": any_json, "sha256Hash": any_json})}),
            },
        ),
    )
    nested = st.integers(min_value=1, max_value=400).map(
        lambda depth: HttpRequest.graphql({"query": _nested_document(depth)}, None)
    ) | st.integers(min_value=1, max_value=400).map(
        lambda depth: HttpRequest.graphql({"query": "{ books(ids: " + "[" * depth + '"1"' + "]" * depth + ") { id } }"}, None)
    ) | st.integers(min_value=500, max_value=3_000).map(
        lambda depth: HttpRequest(
            content=b'{"query": "{ popularBooks { id } }", "variables": {"x": ' + b"[" * depth + b"]" * depth + b"}}",
            headers={"Content-Type": "application/json"},
        )
    )
    huge = st.sampled_from([30_000, 64_000, 70_000, 200_000]).map(
        lambda size: HttpRequest.graphql({"query": ("{ popularBooks { id } } " * (size // 24 + 1))[:size]}, None)
    )
    get = st.builds(
        lambda params, accept: HttpRequest(method="GET", params=params, headers={"Accept": accept}),
        st.fixed_dictionaries(
            {}, optional={"query": st.text(max_size=200), "variables": st.text(max_size=50), "extensions": st.text(max_size=50), "operationName": st.text(max_size=20)}
        ),
        st.sampled_from(["application/json", "text/html", "*/*"]),
    )
    other_methods = st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS"]).map(
        lambda method: HttpRequest(method=method, content=b'{"query": "{ popularBooks { id } }"}', headers={"Content-Type": "application/json"})
    )
    return st.one_of(random_bytes, malformed_json, wrong_shapes, nested, huge, get, other_methods)
