"""The GraphQL schema: root fields, mutations, and the per-request rules every operation runs under."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Annotated

import strawberry
from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from domain import models
from domain.models import InvalidRating, UnknownBook
from graphql_api import jobs
from graphql_api.cache_stats import CacheStats, WindowMinutes, resolve_cache_stats
from graphql_api.context import RequestContext
from graphql_api.errors import BadUserInput, NotFound, tag_validation_errors
from graphql_api.limits import QueryLimits, document_rules
from graphql_api.types import (
    Book,
    BookId,
    Ids,
    Limit,
    RateBookPayload,
    RefreshJob,
    User,
    UserId,
    check_ids,
    check_limit,
    parse_book_id,
    rated_books,
)

JobId = Annotated[strawberry.ID, strawberry.argument(description="The job's id.")]

@strawberry.type(description="Reads. Anonymous.")
class Query:
    @strawberry.field(description="A user by id. An unknown id is a cold-start user, who gets POPULAR recommendations.")
    def user(self, id: UserId) -> User:
        return User(id=id)

    @strawberry.field(description="Users by id, in the order asked (at most 100 ids).")
    def users(self, ids: Ids) -> list[User]:
        check_ids(ids)
        return [User(id=user_id) for user_id in ids]

    @strawberry.field(graphql_type=Book | None, description="A book by id; null when the catalog has no such book.")
    async def book(self, info: Info[RequestContext, None], id: BookId) -> models.Book | None:
        book_id = parse_book_id(id)
        return None if book_id is None else await info.context.loaders.books.load(book_id)

    @strawberry.field(
        graphql_type=list[Book | None],
        description="Books by id, in the order asked (at most 100 ids); null for an id the catalog does not hold.",
    )
    async def books(self, info: Info[RequestContext, None], ids: Ids) -> list[models.Book | None]:
        check_ids(ids)
        book_ids = [parse_book_id(raw) for raw in ids]
        known = [book_id for book_id in book_ids if book_id is not None]
        found = dict(zip(known, await info.context.loaders.books.load_many(known)))
        return [None if book_id is None else found[book_id] for book_id in book_ids]

    @strawberry.field(graphql_type=list[Book], description="The most popular books of the current model, most popular first.")
    async def popular_books(self, info: Info[RequestContext, None], limit: Limit = 10) -> list[models.Book]:
        check_limit(limit)
        context = info.context
        books = await context.loaders.books.load_many(await context.service.popular_book_ids(limit))
        return [book for book in books if book is not None]

    @strawberry.field(graphql_type=RefreshJob | None, description="A refresh job by id; null when this server does not know it.")
    def refresh_job(self, info: Info[RequestContext, None], id: JobId) -> jobs.RefreshJob | None:
        return info.context.jobs.get(id)

    @strawberry.field(description="Cache hit ratio, keys cached, breaker and the served model, for the process answering. Admin only.")
    async def cache_stats(self, info: Info[RequestContext, None], window_minutes: WindowMinutes = 5) -> CacheStats:
        return await resolve_cache_stats(info, window_minutes)


@strawberry.type(description="Writes. Each needs an `Authorization: Bearer <token>` header.")
class Mutation:
    @strawberry.mutation(
        description=(
            "Rate a book 1 to 5 stars (a second rating of the same book replaces the first). Allowed for the "
            "token's own user or an admin. The user's recommendations reflect it at once."
        )
    )
    async def rate_book(
        self,
        info: Info[RequestContext, None],
        user_id: UserId,
        book_id: BookId,
        rating: Annotated[int, strawberry.argument(description="Stars, from 1 to 5.")],
    ) -> RateBookPayload:
        context = info.context
        context.admit_mutation()
        context.principal().require_user_or_admin(user_id)
        parsed_book_id = parse_book_id(book_id)
        if parsed_book_id is None:
            raise NotFound(f"no book with id {book_id!r}")
        try:
            stored = await context.service.rate_book(user_id, parsed_book_id, rating)
        except InvalidRating as error:
            raise BadUserInput(str(error)) from None
        except UnknownBook:
            raise NotFound(f"no book with id {book_id!r}") from None
        context.loaders.forget_user(user_id)
        (rated,) = await rated_books(context.loaders, [stored])
        return RateBookPayload(rating=rated, user=User(id=user_id))

    @strawberry.mutation(description="Drop a user's cached recommendations so the next read recomputes them. Admin only.")
    async def invalidate_recommendations(self, info: Info[RequestContext, None], user_id: UserId) -> bool:
        context = info.context
        context.admit_mutation()
        context.principal().require_admin()
        await context.service.invalidate(user_id)
        context.loaders.forget_user(user_id)
        return True

    @strawberry.mutation(
        graphql_type=RefreshJob,
        description=(
            "Recompute and cache recommendations in the background; returns at once. Only one job runs at a "
            "time: while one runs, this returns it. Admin only."
        ),
    )
    def refresh_recommendations(
        self,
        info: Info[RequestContext, None],
        user_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="Whose; every user of the current model when omitted."),
        ] = strawberry.UNSET,
    ) -> jobs.RefreshJob:
        context = info.context
        context.admit_mutation()
        context.principal().require_admin()
        everyone = user_ids is None or user_ids is strawberry.UNSET
        return context.jobs.start(context.service, None if everyone else user_ids)


class RequestRules(SchemaExtension):
    """This API's limits on a document (graphql_api.limits), and Apollo's code on its validation errors.

    The rule classes are made once per schema, so the ValidationCache, which keys
    on them, hits across requests (Strawberry's limiter extensions make new
    classes per instance, and instances are per request). The token bound is the
    parser's own: it stops reading at the limit, before building anything.
    """

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], max_tokens: int) -> None:
        super().__init__()
        self._rules = rules
        self._max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self._max_tokens
        context.validation_rules = context.validation_rules + self._rules
        yield

    def on_validate(self) -> Iterator[None]:
        yield
        tag_validation_errors(self.execution_context.pre_execution_errors or [])


class BookrecSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Errors are logged once, by kind, when the view formats them (graphql_api.errors), not all with stacks."""


def build_schema(*, introspection: bool = True, limits: QueryLimits = QueryLimits()) -> strawberry.Schema:
    """The schema; without introspection (production) it also leaves field suggestions out of error messages."""
    rules = document_rules(limits)
    if not introspection:
        rules += (NoSchemaIntrospectionCustomRule,)
    return BookrecSchema(
        query=Query,
        mutation=Mutation,
        # Classes and factories, not instances: Strawberry makes the extensions per request.
        extensions=[functools.partial(RequestRules, rules, limits.max_tokens), ParserCache, ValidationCache],
        config=StrawberryConfig(disable_field_suggestions=not introspection),
    )


def schema_sdl() -> str:
    """The SDL `bookrec export-schema` writes to schema.graphql."""
    return f"{build_schema()}\n"
