"""What one request may cost (docs/architecture.md section 8.2): document shape, body size, and a mutation rate per client.

The token bound is graphql-core's parser's own (set in `RequestRules`, graphql_api.schema);
this module holds the bounds that need code of ours:

- `document_rules`: a validation rule for depth, aliases and repeated fields, so the
  ValidationCache remembers its verdict per document and a repeated document costs
  nothing. Fragments are measured once each, so a "fragment bomb" (fragments
  spreading each other many times over) costs time linear in the document.
- `limit_body`: wraps the ASGI `receive` channel and counts the bytes as they arrive,
  so a body larger than the limit is refused after reading at most one chunk past it,
  whatever its Content-Length says (or whether it sends one at all).
- `MutationRateLimiter`: a token bucket per client, in this process.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.language import BREAK
from graphql.validation.validate import ValidationAbortedError
from starlette.types import Message, Receive

from graphql_api.settings import Settings


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Bounds on one GraphQL document; defaults are the settings' defaults."""

    max_depth: int = 8
    max_aliases: int = 30
    max_tokens: int = 2_000

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLimits:
        return cls(settings.max_query_depth, settings.max_query_aliases, settings.max_query_tokens)


# How often one response key may be selected in one selection set (through fragments too).
# graphql-core's OverlappingFieldsCanBeMerged compares every pair of same-named fields:
# 490 copies of `popularBooks { id }` (2,000 tokens) cost it 3.5 s on the event loop.
# Real documents repeat a field at most a few times, where fragments overlap.
MAX_SAME_FIELD = 10


def document_rules(limits: QueryLimits) -> tuple[type[ASTValidationRule], ...]:
    """The validation rule for this API's bounds on a document's shape; made once per schema, so the ValidationCache hits.

    Depth: `{ a { b } }` is 2 deep. Aliases: every aliased field an operation would
    run, fragments counted each time they are spread (as Strawberry's MaxAliases
    counts them; it however re-walks a fragment at every spread, so 22 fragments each
    spreading the next twice kept it busy over 20 s). Repeats: a response key selected
    more than MAX_SAME_FIELD times in one selection set. The rule measures the
    document once, on entering it, with each fragment measured once, and when a bound
    is passed it stops the validation there, before the rules that cost time on
    exactly such documents. Introspection fields (`__schema`, `__type`) are not
    measured: their documents are deep by nature, and NoSchemaIntrospectionCustomRule
    governs them.
    """

    class DocumentShapeRule(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> object:
            measure = _ShapeMeasure(node, limits)
            problems: list[GraphQLError] = []
            for definition in node.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                shape = measure.selections(definition.selection_set)
                name = f"operation {definition.name.value!r}" if definition.name else "the operation"
                if shape.depth > limits.max_depth:
                    problems.append(GraphQLError(f"{name} nests fields more than {limits.max_depth} deep (MAX_QUERY_DEPTH)", definition))
                if shape.aliases > limits.max_aliases:
                    problems.append(GraphQLError(f"{name} uses more than {limits.max_aliases} aliases (MAX_QUERY_ALIASES)", definition))
            if measure.repeated is not None:
                key, where = measure.repeated
                problems.append(GraphQLError(f"`{key}` is selected more than {MAX_SAME_FIELD} times in one selection set", where))
            if problems:
                *reported, last = problems
                for problem in reported:
                    self.report_error(problem)
                # graphql-core ends the validation on this error and returns it with those reported.
                raise ValidationAbortedError(last.message, last.nodes)
            return BREAK  # everything this rule needs was measured here

    return (DocumentShapeRule,)


@dataclass(slots=True)
class _Shape:
    depth: int = 0
    aliases: int = 0
    keys: Counter[str] = field(default_factory=Counter)  # response keys selected at this level


class _ShapeMeasure:
    """The shape of selection sets; each fragment is measured once and counts saturate just past the limits.

    Depth stops being followed past the depth limit, so the recursion is bounded by
    that limit plus the length of a fragment chain, which the token bound keeps short
    (and graphql-core's validation turns a RecursionError into an error anyway).
    """

    def __init__(self, document: DocumentNode, limits: QueryLimits) -> None:
        self._fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._max_depth = limits.max_depth
        self._alias_cap = limits.max_aliases + 1
        self._measured: dict[str, _Shape] = {}
        self._measuring: set[str] = set()
        self.repeated: tuple[str, Node] | None = None  # the first response key selected too often, and where

    def selections(self, selection_set: SelectionSetNode, depth_so_far: int = 0) -> _Shape:
        shape = self._level(selection_set, depth_so_far)
        if self.repeated is None and shape.keys:
            key, count = shape.keys.most_common(1)[0]
            if count > MAX_SAME_FIELD:
                self.repeated = key, selection_set
        return shape

    def _level(self, selection_set: SelectionSetNode, depth_so_far: int) -> _Shape:
        """The selections of one level, fragments merged in, without checking repeats (the caller does)."""
        shape = _Shape()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value.startswith("__"):
                    continue
                shape.keys[(selection.alias or selection.name).value] += 1
                shape.aliases += selection.alias is not None
                depth = 1
                if selection.selection_set is not None:
                    if depth_so_far + 1 > self._max_depth:
                        depth = 2  # already past the limit: how far past does not matter
                    else:
                        below = self.selections(selection.selection_set, depth_so_far + 1)
                        depth, shape.aliases = 1 + below.depth, shape.aliases + below.aliases
                shape.depth = max(shape.depth, depth)
            else:
                if isinstance(selection, InlineFragmentNode):
                    inner = self._level(selection.selection_set, depth_so_far)
                elif isinstance(selection, FragmentSpreadNode):
                    inner = self._fragment(selection.name.value)
                else:
                    continue
                shape.depth = max(shape.depth, inner.depth)
                shape.aliases += inner.aliases
                for key, count in inner.keys.items():
                    shape.keys[key] = min(shape.keys[key] + count, MAX_SAME_FIELD + 1)
            shape.aliases = min(shape.aliases, self._alias_cap)
        return shape

    def _fragment(self, name: str) -> _Shape:
        # Unknown fragments and cycles are other rules' errors (KnownFragmentNames, NoFragmentCycles).
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:
            return _Shape()
        if name not in self._measured:
            self._measuring.add(name)
            # Measured from depth 0, so the result holds wherever the fragment is spread.
            self._measured[name] = self._level(fragment.selection_set, 0)
            self._measuring.discard(name)
        return self._measured[name]


class PayloadTooLarge(Exception):
    """The request body (or GET query string) passed MAX_REQUEST_BYTES."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the request is larger than {max_bytes} bytes (MAX_REQUEST_BYTES)")
        self.max_bytes = max_bytes


def check_declared_size(headers: list[tuple[bytes, bytes]], query_string: bytes, max_bytes: int) -> None:
    """Refuse before reading anything when the request says it is too large; raises PayloadTooLarge."""
    if len(query_string) > max_bytes:
        raise PayloadTooLarge(max_bytes)
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or int(value) > max_bytes:  # a malformed length is refused, not trusted
                raise PayloadTooLarge(max_bytes)


def limit_body(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising PayloadTooLarge once the body read so far passes `max_bytes`."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise PayloadTooLarge(max_bytes)
        return message

    return limited


class MutationRateLimiter:
    """A token bucket per client key: `burst` mutations at once, refilled at `per_minute` a minute.

    Buckets live in this process, so with N worker processes (or tasks) a client gets
    up to N times the rate; that is enough to stop a runaway script, which is the point,
    and costs no round trip. The least recently seen buckets are forgotten past
    `max_clients` (a forgotten client starts again with a full bucket), so memory stays
    bounded however many clients or addresses appear.
    """

    def __init__(
        self, per_minute: int, burst: int, *, max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("per_minute and burst must be at least 1")
        self._per_second = per_minute / 60
        self._burst = float(burst)
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, as of)

    def acquire(self, client: str) -> float:
        """Take one token: 0.0 when taken, else the seconds until one will be there (nothing is taken)."""
        now = self._clock()
        tokens, as_of = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - as_of) * self._per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._per_second
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait


def build_rate_limiter(settings: Settings) -> MutationRateLimiter | None:
    """The limiter the settings ask for; None when MUTATION_RATE_PER_MINUTE=0 turns it off."""
    if settings.mutation_rate_per_minute == 0:
        return None
    return MutationRateLimiter(settings.mutation_rate_per_minute, settings.mutation_rate_burst)
