"""moto's DynamoDB over real HTTP: one ThreadedMotoServer per test session, a fresh table per test.

moto's in-process mocks answer botocore's synchronous HTTP layer and do not work
with aiobotocore's asynchronous one, so the DynamoDB adapter is tested against
moto's server through aiohttp, exactly as it talks to AWS. Imported by
tests/conftest.py so every test package can ask for `moto_server` (the endpoint
URL) or `dynamodb_settings`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from moto.server import ThreadedMotoServer

from adapters.dynamodb_store import create_table, dynamodb_client
from graphql_api.settings import Settings, load_settings

MOTO_REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server on 127.0.0.1 and a free port, with dummy credentials set."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the OS picks a free one
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
async def dynamodb_settings(moto_server: str) -> AsyncIterator[Settings]:
    """Settings naming a new, empty table on the moto server; the table is deleted after the test."""
    settings = load_settings(
        dynamodb_table=f"bookrec-test-{uuid.uuid4().hex[:12]}", dynamodb_endpoint_url=moto_server, aws_region=MOTO_REGION
    )
    options = {"region": MOTO_REGION, "endpoint_url": moto_server}
    assert await create_table(table=settings.dynamodb_table or "", **options)
    yield settings
    async with dynamodb_client(**options) as client:
        await client.delete_table(TableName=settings.dynamodb_table)
