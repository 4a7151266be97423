"""Adapters: the ports of `domain.ports` implemented on SQLite, in-process memory, Redis and DynamoDB."""
