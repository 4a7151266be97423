"""Hardening tests reuse the API's app over seeded SQLite (tests/api/conftest.py) and start real servers of their own."""

from tests.api.conftest import api, make_cache, seeded_stores, settings, wrap_stores  # noqa: F401
