"""Read plans: the recommendation reads clients make most, answered without the general executor.

Why: for a cache hit of `{ user(id: $id) { recommendations(limit: 10) { score book
{ id title authors } } } }` the data costs one MGET and ten dictionary lookups, but
Strawberry's view and graphql-core's executor spend well over a millisecond around
them (extension hooks, a resolver call and an awaitable per field of every item,
result completion). A plan is that query's shape, worked out once from its AST:
which users it reads, with which limits, and which fields to write in which order.

What may be planned: one query operation, no fragments and no directives, whose root
fields are `user(id:)`, `users(ids:)` and `__typename`; below them `id`,
`recommendations(limit:)`, `score`, `source`, `book` and the Book's scalar fields,
under any aliases. Anything else runs through Strawberry, as does every request
whose variables are not the plain values the plan expects (a number where an ID
is due, a limit out of range, too many ids) or that carries `extensions`
(persisted queries). A document is planned only after it has run through
Strawberry once without errors, so it is known to parse, validate against the
schema and pass this API's limits (and, with PERSISTED_QUERIES_ONLY, the
allow-list) before a plan ever answers it.

Nothing is cached here but plans and each book's rendered JSON (`BookFragments`, kept
only for the very Book object it was made from). Every planned request reads exactly
what the resolvers read: one `RecommendationService.recommendation_lists` for all its users
(one cache MGET; misses computed under leases) and one catalog read per 100
distinct books. So a rating, whose DEL removes `reco:{user_id}`, is seen by the
next planned request exactly as by the executor. The tests compare both paths'
bytes for every shape the planner accepts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    parse,
)
from starlette.types import Message, Receive, Scope
from strawberry.types import ExecutionResult

from domain.models import Book, Recommendation, RecommendationList
from domain.ports import BookCatalog
from domain.service import RecommendationService
from graphql_api.loaders import CATALOG_BATCH
from graphql_api.types import DEFAULT_LIMIT, MAX_IDS, MAX_LIMIT, MIN_LIMIT

logger = logging.getLogger("bookrec.read_plans")

MAX_PLANS = 256  # distinct (document, operation name) pairs remembered, planned or not
# Rendered books remembered, over every plan: the catalog (10,000 books in the benchmark) in a few
# selections, at about 260 bytes each (26 MB at most). One bound for all plans rather than one per
# plan or field: a document can select books under 30 aliases, and 256 documents are remembered.
MAX_BOOK_FRAGMENTS = 100_000
_INT32 = range(-(2**31), 2**31)  # GraphQL's Int


class Fallback(Exception):
    """This request is not the plain shape its plan covers: run it through Strawberry instead."""


@dataclass(frozen=True, slots=True)
class Variable:
    name: str


Argument = Variable | str | int | tuple[str, ...]


def _argument_value(value: Argument, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, Variable):
        if value.name not in variables:
            raise Fallback  # the executor applies defaults and reports what is missing
        return variables[value.name]
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise Fallback  # the executor reports a non-finite Float as an error
    return value


def _int32(value: int | None) -> int | None:
    if value is not None and value not in _INT32:
        raise Fallback
    return value


def _optional_float(value: float | None) -> float | None:
    return None if value is None else _finite(value)


# Book fields: the response value of each, from a domain Book.
BOOK_FIELDS: dict[str, Callable[[Book], object]] = {
    "id": lambda book: str(book.id),
    "title": lambda book: book.title,
    "authors": lambda book: book.authors,  # a tuple: orjson writes it as the same array as a list
    "publicationYear": lambda book: _int32(book.publication_year),
    "imageUrl": lambda book: book.image_url,
    "averageRating": lambda book: _optional_float(book.average_rating),
    "ratingsCount": lambda book: _int32(book.ratings_count),
    "__typename": lambda book: "Book",
}

# What is written of a book, in order: (response key, BOOK_FIELDS value). Equal for equal selections,
# so plans that select a book alike share its rendering.
BookSelection = tuple[tuple[str, Callable[[Book], object]], ...]


class BookFragments:
    """Books as the JSON their selections write, made once per (selection, book) and shared by all plans.

    Why: the hot queries write the same few thousand books over and over, and a dict per book
    built by a call per field, serialised again on every request, cost more than the rest of a
    planned answer. An entry is only ever given back for the Book object it was made from: the
    catalog cache (adapters.cached_catalog) rereads books after its TTL or an import as new
    objects, so a changed book is rendered afresh, never served from an old rendering.
    """

    def __init__(self, *, max_entries: int = MAX_BOOK_FRAGMENTS) -> None:
        self._max_entries = max_entries
        self._by_selection: dict[BookSelection, dict[int, tuple[Book, orjson.Fragment]]] = {}
        self._entries = 0

    def render(self, selection: BookSelection, books: Mapping[int, Book]) -> dict[int, orjson.Fragment]:
        """The fragment of each of `books` (by id); raises Fallback for a value the executor would refuse."""
        if not books:
            return {}  # so every selection held has an entry, and the bound on entries bounds selections too
        held = self._by_selection.get(selection)
        if held is None:
            held = self._by_selection[selection] = {}
        fragments: dict[int, orjson.Fragment] = {}
        for book_id, book in books.items():
            entry = held.get(book_id)
            if entry is None or entry[0] is not book:
                if entry is None:
                    if self._entries >= self._max_entries:  # start again rather than grow past the bound
                        self._by_selection = {selection: held}
                        held.clear()
                        self._entries = 0
                    self._entries += 1
                entry = held[book_id] = (book, _fragment(book, selection))
            fragments[book_id] = entry[1]
        return fragments


def _fragment(book: Book, selection: BookSelection) -> orjson.Fragment:
    rendered = orjson.dumps({key: value(book) for key, value in selection})
    # The bytes orjson returns keep its whole output buffer (about 4 KB); kept for long, they are copied
    # to their size (about 100 bytes).
    return orjson.Fragment(bytes(memoryview(rendered)))


@dataclass(frozen=True, slots=True)
class RecommendationsField:
    """`recommendations(limit:)` of one user, and what to write of each item, in selection order."""

    limit: Argument
    item_fields: tuple[tuple[str, str], ...]  # (response key, "score" | "source" | "__typename" | "book")
    book_fields: BookSelection

    def limit_value(self, variables: Mapping[str, Any]) -> int:
        limit = _argument_value(self.limit, variables)
        if type(limit) is not int or not MIN_LIMIT <= limit <= MAX_LIMIT:
            raise Fallback  # the resolver's error message is the executor's to give
        return limit


@dataclass(frozen=True, slots=True)
class UserSelection:
    """What is asked of each user: response keys in order, each `id`, `__typename` or a RecommendationsField."""

    fields: tuple[tuple[str, str | RecommendationsField], ...]

    @property
    def recommendations(self) -> list[RecommendationsField]:
        return [field for _, field in self.fields if isinstance(field, RecommendationsField)]


@dataclass(frozen=True, slots=True)
class RootField:
    key: str
    kind: str  # "user", "users" or "__typename"
    ids: Argument = ()
    selection: UserSelection = UserSelection(())

    def user_ids(self, variables: Mapping[str, Any]) -> list[str]:
        value = _argument_value(self.ids, variables)
        if self.kind == "user":
            if type(value) is not str:
                raise Fallback  # an ID given as a number is coerced by the executor
            return [value]
        if type(value) not in (list, tuple) or len(value) > MAX_IDS or any(type(item) is not str for item in value):
            raise Fallback
        return list(value)


@dataclass(frozen=True, slots=True)
class ReadPlan:
    roots: tuple[RootField, ...]

    async def execute(
        self, variables: Mapping[str, Any], service: RecommendationService, catalog: BookCatalog, fragments: BookFragments
    ) -> bytes:
        """The response body: `{"data": ...}` as the executor would write it; raises Fallback."""
        asked = [(root, [] if root.kind == "__typename" else root.user_ids(variables)) for root in self.roots]
        # Keyed by identity: each field is one object of this plan, which outlives the request.
        limits = {
            id(field): field.limit_value(variables)
            for root, _ in asked for field in root.selection.recommendations
        }
        readers = list(dict.fromkeys(user for root, users in asked if root.selection.recommendations for user in users))
        shown = max(limits.values(), default=0)  # no field shows more of a list than this
        lists = dict(zip(readers, await service.recommendation_lists(readers, items=shown))) if readers else {}
        book_ids = list(dict.fromkeys([
            item.book_id
            for root, users in asked for field in root.selection.recommendations for user in users
            for item in lists[user].items[: limits[id(field)]]
        ]))
        books: dict[int, Book] = {}
        for start in range(0, len(book_ids), CATALOG_BATCH):
            books.update(await catalog.get_many(book_ids[start : start + CATALOG_BATCH]))
        # Each field is given every book of the request, those only another field shows included, so
        # the ids are collected once; should such a book hold a value the executor would refuse (an
        # Int past 32 bits), the request costs a Fallback it did not need.
        rendered_books = {
            id(field): fragments.render(field.book_fields, books) for root, _ in asked for field in root.selection.recommendations
        }

        data: dict[str, object] = {}
        for root, users in asked:
            if root.kind == "__typename":
                data[root.key] = "Query"
                continue
            rendered = [_render_user(user, root.selection, lists, rendered_books, limits) for user in users]
            data[root.key] = rendered[0] if root.kind == "user" else rendered
        return orjson.dumps({"data": data})


def _render_user(
    user_id: str, selection: UserSelection, lists: Mapping[str, RecommendationList],
    rendered_books: Mapping[int, Mapping[int, orjson.Fragment]], limits: Mapping[int, int],
) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, field in selection.fields:
        if isinstance(field, RecommendationsField):
            out[key] = _render_items(lists[user_id].items[: limits[id(field)]], rendered_books[id(field)], field)
        else:
            out[key] = user_id if field == "id" else "User"
    return out


def _render_items(
    items: Iterable[Recommendation], books: Mapping[int, orjson.Fragment], field: RecommendationsField
) -> list[dict[str, object]]:
    """One loop per list rather than a call per item: a 50-user request renders 500 items."""
    rendered = []
    for item in items:
        book = books.get(item.book_id)
        if book is None:
            continue  # as the resolver does: an item whose book the catalog no longer holds is left out
        out: dict[str, object] = {}
        for key, kind in field.item_fields:
            if kind == "score":
                out[key] = _finite(item.score)
            elif kind == "source":
                out[key] = item.source.value  # the enum's GraphQL names are its values
            elif kind == "__typename":
                out[key] = "Recommendation"
            else:
                out[key] = book
        rendered.append(out)
    return rendered


class NotPlannable(Exception):
    """The document is outside what plans cover."""


def _fields(selection_set: SelectionSetNode | None) -> list[tuple[str, FieldNode]]:
    """(response key, field) pairs; refuses fragments, directives and a response key used twice (merged fields)."""
    if selection_set is None:
        raise NotPlannable
    pairs: list[tuple[str, FieldNode]] = []
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives:
            raise NotPlannable
        pairs.append(((selection.alias or selection.name).value, selection))
    if len({key for key, _ in pairs}) != len(pairs):
        raise NotPlannable
    return pairs


def _arguments(field: FieldNode, allowed: set[str]) -> dict[str, ValueNode]:
    arguments = {argument.name.value: argument.value for argument in field.arguments or ()}
    if not arguments.keys() <= allowed:
        raise NotPlannable
    return arguments


def _leaf(field: FieldNode) -> None:
    if field.arguments or field.selection_set is not None:
        raise NotPlannable


def _id_argument(value: ValueNode) -> Argument:
    if isinstance(value, VariableNode):
        return Variable(value.name.value)
    if isinstance(value, StringValueNode):
        return value.value
    raise NotPlannable


def _ids_argument(value: ValueNode) -> Argument:
    if isinstance(value, ListValueNode) and all(isinstance(item, StringValueNode) for item in value.values):
        return tuple(item.value for item in value.values)  # type: ignore[attr-defined]
    if isinstance(value, VariableNode):
        return Variable(value.name.value)
    raise NotPlannable


def _limit_argument(value: ValueNode | None) -> Argument:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, VariableNode):
        return Variable(value.name.value)
    if isinstance(value, IntValueNode):
        return int(value.value)
    raise NotPlannable


def _recommendations(field: FieldNode) -> RecommendationsField:
    limit = _limit_argument(_arguments(field, {"limit"}).get("limit"))
    item_fields: list[tuple[str, str]] = []
    book_fields: BookSelection = ()
    for key, item_field in _fields(field.selection_set):
        name = item_field.name.value
        if name == "book":
            if item_field.arguments:
                raise NotPlannable
            book_fields = tuple((book_key, _book_field(book_field)) for book_key, book_field in _fields(item_field.selection_set))
        elif name in ("score", "source", "__typename"):
            _leaf(item_field)
        else:
            raise NotPlannable
        item_fields.append((key, name))
    return RecommendationsField(limit, tuple(item_fields), book_fields)


def _book_field(field: FieldNode) -> Callable[[Book], object]:
    _leaf(field)
    value = BOOK_FIELDS.get(field.name.value)
    if value is None:
        raise NotPlannable
    return value


def _user_selection(field: FieldNode) -> UserSelection:
    fields: list[tuple[str, str | RecommendationsField]] = []
    for key, user_field in _fields(field.selection_set):
        name = user_field.name.value
        if name == "recommendations":
            fields.append((key, _recommendations(user_field)))
        elif name in ("id", "__typename"):
            _leaf(user_field)
            fields.append((key, name))
        else:
            raise NotPlannable
    return UserSelection(tuple(fields))


def build_plan(document: DocumentNode) -> ReadPlan:
    """The plan of a document that has already run without errors; raises NotPlannable."""
    if len(document.definitions) != 1:
        raise NotPlannable
    (operation,) = document.definitions
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not OperationType.QUERY
        or operation.directives
        or any(definition.directives for definition in operation.variable_definitions or ())
    ):
        raise NotPlannable
    roots: list[RootField] = []
    for key, field in _fields(operation.selection_set):
        name = field.name.value
        if name == "user":
            roots.append(RootField(key, name, _id_argument(_arguments(field, {"id"})["id"]), _user_selection(field)))
        elif name == "users":
            roots.append(RootField(key, name, _ids_argument(_arguments(field, {"ids"})["ids"]), _user_selection(field)))
        elif name == "__typename":
            _leaf(field)
            roots.append(RootField(key, name))
        else:
            raise NotPlannable
    if all(root.kind == "__typename" for root in roots):
        raise NotPlannable  # nothing a plan saves
    return ReadPlan(tuple(roots))


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request its plan answers; named like Strawberry's request data, for the request log."""

    plan: ReadPlan
    query: str
    operation_name: str | None
    variables: Mapping[str, Any]


class ReadPlans:
    """The plans of this process's admitted documents, keyed by (document text, operation name)."""

    def __init__(self, *, max_plans: int = MAX_PLANS) -> None:
        self._max_plans = max_plans
        self._plans: dict[tuple[str, str | None], ReadPlan | None] = {}
        self._book_fragments = BookFragments()
        self.answered = 0  # requests a plan answered, for tests that count

    def admit(self, query: str, operation_name: str | None) -> None:
        """Called after `query` ran through Strawberry without errors: plan it (or note that it cannot be)."""
        key = (query, operation_name)
        if key in self._plans:
            return
        try:
            plan: ReadPlan | None = build_plan(parse(query, no_location=True))
        except (NotPlannable, GraphQLError):
            plan = None
        except Exception:  # a planner bug must cost speed, never the answer that already succeeded
            logger.exception("could not plan a document; it keeps running through Strawberry")
            plan = None
        if len(self._plans) >= self._max_plans:
            del self._plans[next(iter(self._plans))]  # the oldest; a hot document is re-admitted on its next run
        self._plans[key] = plan

    def match(self, body: bytes) -> PlannedRequest | None:
        """The planned request a JSON body asks for, or None to run it through Strawberry."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(request) is not dict or not request.keys() <= {"query", "variables", "operationName", "extensions"}:
            return None
        if request.get("extensions"):  # persisted queries: the persisted-query layer resolves and checks them
            return None
        query, operation_name, variables = request.get("query"), request.get("operationName"), request.get("variables")
        if variables is None:
            variables = {}
        if type(query) is not str or type(variables) is not dict:
            return None
        if operation_name is not None and type(operation_name) is not str:
            return None
        plan = self._plans.get((query, operation_name))
        return None if plan is None else PlannedRequest(plan, query, operation_name, variables)

    async def answer(self, planned: PlannedRequest, service: RecommendationService, catalog: BookCatalog) -> bytes:
        """The response body of a planned request; raises Fallback when Strawberry must answer it instead."""
        body = await planned.plan.execute(planned.variables, service, catalog, self._book_fragments)
        self.answered += 1
        return body


class ReadPlansMixin:
    """Admits documents to `read_plans` as they run through Strawberry; list it first in the view's bases,
    so that it sees the final result (a persisted-query refusal included)."""

    read_plans: ReadPlans

    async def execute_single(self, *, request_data: Any, **kwargs: Any) -> ExecutionResult:
        result: ExecutionResult = await super().execute_single(request_data=request_data, **kwargs)  # type: ignore[misc]
        if not result.errors and result.data is not None and request_data.query and not request_data.extensions:
            self.read_plans.admit(request_data.query, request_data.operation_name)
        return result



def is_json_post(scope: Scope) -> bool:
    """A POST with a JSON body: the only kind of request a plan may answer."""
    if scope["method"] != "POST":
        return False
    content_type = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: what was read is all there is
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` again, for the view when a plan did not answer; then the client's own."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
