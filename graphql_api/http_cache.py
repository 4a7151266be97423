"""HTTP caching headers for GraphQL responses: public only when nobody's data is in them.

A shared cache (CDN, proxy) may keep a response for everyone only if it holds no
user data and no error: an anonymous query whose root fields are all catalog
fields (books and popular books). Everything else (a request with credentials, a
mutation, any `user`/`users`/`refreshJob` field, any error, including
PERSISTED_QUERY_NOT_FOUND, which a CDN must never keep) is `private, no-store`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    parse,
)
from strawberry.types import ExecutionResult

if TYPE_CHECKING:
    from graphql_api.settings import Settings

PRIVATE = "private, no-store"
# Root fields whose answers are the same for every caller.
PUBLIC_ROOT_FIELDS = frozenset({"popularBooks", "book", "books", "__typename"})


def public_max_age(settings: Settings) -> int:
    """Seconds a public answer may be reused: no longer than cached recommendations live, nor a served model goes unchecked."""
    bounds = [settings.cache_ttl_seconds]
    if settings.model_refresh_seconds > 0:
        bounds.append(settings.model_refresh_seconds)
    return min(bounds)


def cache_control(
    document: DocumentNode, operation_name: str | None, *, authenticated: bool, succeeded: bool, max_age: int
) -> str:
    """The Cache-Control value for the response to one operation of `document`."""
    if authenticated or not succeeded:
        return PRIVATE
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return PRIVATE
    fragments = {
        definition.name.value: definition.selection_set
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    if not _root_field_names(operation.selection_set, fragments) <= PUBLIC_ROOT_FIELDS:
        return PRIVATE
    return f"public, max-age={max_age}"


def _root_field_names(selection_set: SelectionSetNode, fragments: dict[str, SelectionSetNode]) -> set[str]:
    """Every field name selected at the root, through fragments; @skip/@include are ignored (counted as selected)."""
    names: set[str] = set()
    pending, seen = [selection_set], set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                # An unknown fragment fails validation, so the response has errors and is private anyway.
                if (fragment := fragments.get(selection.name.value)) is not None:
                    pending.append(fragment)
    return names


@lru_cache(maxsize=512)
def _parsed(query: str) -> DocumentNode | None:
    try:
        return parse(query)
    except GraphQLError:
        return None


class CacheControlMixin:
    """Sets Cache-Control on `strawberry.asgi.GraphQL` responses; list it before GraphQL (after PersistedQueriesMixin,
    so that it sees the document a hash stood for)."""

    def __init__(self, *args: Any, public_max_age: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.public_max_age = public_max_age

    async def execute_single(self, *, request: Any, request_data: Any, sub_response: Any, **kwargs: Any) -> ExecutionResult:
        result: ExecutionResult = await super().execute_single(  # type: ignore[misc]
            request=request, request_data=request_data, sub_response=sub_response, **kwargs
        )
        document = _parsed(request_data.query) if request_data.query else None
        value = PRIVATE
        if document is not None:
            value = cache_control(
                document,
                request_data.operation_name,
                authenticated="authorization" in request.headers,
                succeeded=not result.errors and result.data is not None,
                max_age=self.public_max_age,
            )
        # In a batch every operation shares one response, so one private answer makes it all private.
        if sub_response.headers.get("cache-control") != PRIVATE:
            sub_response.headers["cache-control"] = value
        return result
