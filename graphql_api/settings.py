"""Configuration from environment variables, validated once at start-up.

Every setting has a default that runs the service on embedded stores with no
servers; a bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import tempfile
from pathlib import Path

from domain.item_model import ItemModelParams


class SettingsError(ValueError):
    """A bad environment variable, worded for the operator who set it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    # Serving
    debug: bool = Field(False, description="Development mode: GraphiQL, introspection, readable logs.")
    host: str = Field("127.0.0.1", description="Interface `bookrec serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `bookrec serve` binds.")
    web_concurrency: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    graphiql: bool | None = Field(None, description="Serve GraphiQL; defaults to DEBUG.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    cors_origins: str = Field("", description="Comma-separated origins allowed to call the API from a browser.")
    otel_enabled: bool = Field(False, description="OpenTelemetry tracing (needs the `otel` extra; OTEL_* configure it).")

    # Request limits (docs/architecture.md section 8.2); each refusal is a coded error
    introspection: bool | None = Field(None, description="Answer introspection queries; defaults to DEBUG.")
    max_query_depth: int = Field(8, ge=1, le=100, description="Deepest field nesting a document may have.")
    max_query_aliases: int = Field(30, ge=0, le=10_000, description="Aliases one document may use.")
    max_query_tokens: int = Field(2_000, ge=100, le=1_000_000, description="Lexical tokens one document may have.")
    max_request_bytes: int = Field(65_536, ge=1_024, description="Largest request body (and GET query string); 413 past it.")
    mutation_rate_per_minute: int = Field(120, ge=0, description="Mutation fields a client may run per minute, sustained; 0 turns the limit off.")
    mutation_rate_burst: int = Field(30, ge=1, description="Mutation fields a client may run at once before the rate applies.")

    # Auth
    auth_jwt_secret: str | None = Field(None, min_length=16, description="HS256 secret for bearer tokens.")

    # Embedded stores
    sqlite_path: str = Field("./data/bookrec.db", description="SQLite file used when DYNAMODB_TABLE is unset.")

    # Cache
    redis_url: str | None = Field(None, pattern=r"^rediss?://", description="Use Redis for the cache when set.")
    redis_password: str | None = Field(None, description="AUTH password when it is not in REDIS_URL.")
    redis_cluster: bool = Field(False, description="Talk to Redis in cluster mode.")
    redis_timeout_ms: int = Field(50, ge=1, le=10_000, description="Socket timeout for cache calls.")
    cache_ttl_seconds: int = Field(600, ge=1, description="Lifetime of cached recommendations.")
    cache_lease_ms: int = Field(2_000, ge=10, description="How long a lease on a missing key lasts.")
    cache_max_entries: int = Field(100_000, ge=1, description="Size bound of the in-process cache.")

    # Persisted queries
    persisted_queries_only: bool = Field(False, description="Run only the operations in the persisted-query manifest.")
    apq_ttl_seconds: int = Field(86_400, ge=1, description="Lifetime of an automatically persisted query.")

    # DynamoDB
    dynamodb_table: str | None = Field(None, min_length=3, description="Use DynamoDB for ratings and books when set.")
    dynamodb_endpoint_url: str | None = Field(None, description="DynamoDB Local or moto server URL.")
    aws_region: str = Field("us-east-1", description="AWS region of the table.")

    # The item model: trained by `bookrec train`, published to MODEL_URI, polled by serving processes
    model_uri: str = Field("./data/model", min_length=1, description="Where models are published and read: a directory or s3://bucket/prefix.")
    model_refresh_seconds: int = Field(60, ge=0, description="Check MODEL_URI for a newer model this often; 0 never.")
    model_keep_versions: int = Field(5, ge=1, le=1000, description="Model versions `bookrec train` keeps for rollbacks.")
    model_cache_dir: str = Field(str(Path(tempfile.gettempdir()) / "bookrec-models"),
                                 description="Local copies of models read from S3 (shared by the workers of a host).")
    model_s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint for MODEL_URI (moto's server, MinIO).")
    model_input: Literal["binary", "liked", "stars"] = Field(ItemModelParams.input, description="What the trained matrix holds per rating.")
    model_l2: float = Field(ItemModelParams.l2, gt=0, description="EASE's regularisation lambda.")
    model_weights_per_book: int = Field(ItemModelParams.weights_per_book, ge=1, description="Weights kept per book.")
    ease_max_books: int = Field(ItemModelParams.ease_max_books, ge=1, description="Largest catalogue trained by EASE; above it, item-kNN.")
    max_recommendations: int = Field(50, ge=1, le=500, description="Recommendations computed and cached per user.")

    @field_validator("model_uri")
    @classmethod
    def _model_uri_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else None
        if scheme not in (None, "file", "s3") or value in ("s3://", "file://") or value.startswith("s3:///"):
            raise ValueError("must be a directory, file://PATH or s3://BUCKET[/PREFIX]")
        return value

    @model_validator(mode="after")
    def _secret_outside_debug(self) -> "Settings":
        return self

    @property
    def graphiql_enabled(self) -> bool:
        return self.debug if self.graphiql is None else self.graphiql

    @property
    def introspection_enabled(self) -> bool:
        return self.debug if self.introspection is None else self.introspection

    @cached_property
    def item_model_params(self) -> ItemModelParams:
        return ItemModelParams(
            input=self.model_input, l2=self.model_l2, weights_per_book=self.model_weights_per_book, ease_max_books=self.ease_max_books,
        )


def load_settings(**overrides: object) -> Settings:
    """Read the environment (overrides win, for tests); raise SettingsError naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'_'.join(str(part) for part in issue['loc']).upper() or 'settings'}: {issue['msg']}"
            + (f" (got {issue['input']!r})" if not isinstance(issue.get("input"), dict) else "")
            for issue in error.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
