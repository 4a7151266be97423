"""schema.graphql is the exported SDL, and the schema is the issue's contract: names, types, nullability, defaults."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema as build_contract
from graphql import find_breaking_changes, find_dangerous_changes

from graphql_api.schema import build_schema, schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

# The public contract as issue 3 states it (without descriptions).
CONTRACT = """
scalar DateTime
enum RecommendationSource { COLLABORATIVE POPULAR }
enum JobStatus { QUEUED RUNNING SUCCEEDED FAILED }
type Book { id: ID!  title: String!  authors: [String!]!  publicationYear: Int  imageUrl: String  averageRating: Float  ratingsCount: Int! }
type Rating { book: Book!  rating: Int!  ratedAt: DateTime! }
type Recommendation { book: Book!  score: Float!  source: RecommendationSource! }
type User { id: ID!  ratings: [Rating!]!  recommendations(limit: Int! = 10): [Recommendation!]! }
type RefreshJob { id: ID!  status: JobStatus!  total: Int!  processed: Int! }
type RateBookPayload { rating: Rating!  user: User! }
type Query {
  user(id: ID!): User!
  users(ids: [ID!]!): [User!]!
  book(id: ID!): Book
  books(ids: [ID!]!): [Book]!
  popularBooks(limit: Int! = 10): [Book!]!
  refreshJob(id: ID!): RefreshJob
}
type Mutation {
  rateBook(userId: ID!, bookId: ID!, rating: Int!): RateBookPayload!
  invalidateRecommendations(userId: ID!): Boolean!
  refreshRecommendations(userIds: [ID!]): RefreshJob!
}
"""

# What issue 10 (operations) adds to it: the admin-only `cacheStats` query and its types.
ISSUE_10_ADDITIONS = """
enum CacheBackend { REDIS MEMORY }
enum CircuitBreakerState { CLOSED OPEN HALF_OPEN }
type CacheStats {
  backend: CacheBackend!  hitRatio: Float  hits: Int!  misses: Int!  windowSeconds: Float!
  keysCached: Int  keysCachedExact: Boolean!  breakerState: CircuitBreakerState
  snapshotVersion: String!  snapshotAgeSeconds: Float!
}
extend type Query { cacheStats(windowMinutes: Int! = 5): CacheStats! }
"""


def test_schema_graphql_is_the_exported_sdl() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), "schema.graphql is stale: run `bookrec export-schema`"


def test_the_schema_is_the_contract_in_both_directions() -> None:
    ours = build_schema()._schema
    contract = build_contract(CONTRACT + ISSUE_10_ADDITIONS)
    for old, new in ((contract, ours), (ours, contract)):
        assert find_breaking_changes(old, new) == []
        assert find_dangerous_changes(old, new) == []


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    schema = build_schema()._schema
    undescribed = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            undescribed.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                undescribed.append(f"{name}.{field_name}")
            for argument_name, argument in getattr(field, "args", {}).items():
                if not argument.description:
                    undescribed.append(f"{name}.{field_name}({argument_name})")
        for value_name, value in getattr(graphql_type, "values", {}).items():
            if not value.description:
                undescribed.append(f"{name}.{value_name}")
    assert undescribed == []
