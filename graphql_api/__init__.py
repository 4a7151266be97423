"""The GraphQL API: Strawberry types, per-request loaders, the Starlette app, settings and the CLI."""
