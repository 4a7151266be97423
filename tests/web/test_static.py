"""The SPA's static files (ETag, 304) and GraphiQL served from the service's own vendored assets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from graphql_api.settings import Settings
from graphql_api.web import ASSETS_PREFIX, EXAMPLE_HEADERS
from graphql_api.web.vendor import VENDOR_DIR, load_assets
from tests.api.conftest import api_settings


async def test_the_spa_is_served_at_the_root_with_an_etag(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in response.text
    assert response.headers["etag"]
    assert response.headers["last-modified"]
    assert response.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/", "/app.js", "/app.css", "/persisted-queries.json"])
async def test_a_matching_etag_gets_304_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    first = await client.get(path)

    revalidated = await client.get(path, headers={"if-none-match": first.headers["etag"]})

    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == first.headers["etag"]


async def test_a_stale_etag_gets_the_file(client: httpx.AsyncClient) -> None:
    response = await client.get("/app.js", headers={"if-none-match": '"not-the-current-etag"'})

    assert response.status_code == 200
    assert "persistedQuery" in response.text
    assert response.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}


async def test_if_modified_since_the_last_modification_gets_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/app.css")

    revalidated = await client.get("/app.css", headers={"if-modified-since": first.headers["last-modified"]})

    assert revalidated.status_code == 304


async def test_the_api_routes_still_answer_beside_the_spa(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/no-such-file.txt")).status_code == 404


def require_vendored_assets() -> None:
    missing = [asset.path for asset in load_assets() if not (VENDOR_DIR / asset.path).is_file()]
    assert not missing, f"GraphiQL assets not vendored ({', '.join(missing)}): run `make install` (npm ci + vendor.py)"


async def test_graphiql_loads_only_this_services_assets_with_integrity(client: httpx.AsyncClient) -> None:
    require_vendored_assets()

    response = await client.get("/graphql", headers={"accept": "text/html"})

    assert response.status_code == 200
    page = response.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(urls) == sorted(["data:,", *(f"{ASSETS_PREFIX}/{asset.path}" for asset in load_assets())])
    for asset in load_assets():
        assert f'"{ASSETS_PREFIX}/{asset.path}" integrity="{asset.integrity}"' in page
    assert "https://" not in page and "http://" not in page
    nonce = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page
    assert response.headers["cache-control"] == "no-store"


async def test_graphiql_has_an_example_tab_with_the_authorization_header_to_fill(client: httpx.AsyncClient) -> None:
    require_vendored_assets()

    page = (await client.get("/graphql", headers={"accept": "text/html"})).text

    defaults = json.loads(re.search(r'<script type="application/json" id="graphiql-defaults">(.*?)</script>', page, re.S).group(1))
    assert defaults["endpoint"] == "/graphql"
    assert "recommendations(limit: 5)" in defaults["query"]
    assert json.loads(defaults["headers"]) == {"Authorization": "Bearer <paste a token from make serve>"} == json.loads(EXAMPLE_HEADERS)


async def test_vendored_assets_are_the_pinned_bytes_and_cached_for_good(client: httpx.AsyncClient) -> None:
    require_vendored_assets()
    for asset in load_assets():
        response = await client.get(f"{ASSETS_PREFIX}/{asset.path}")

        assert response.status_code == 200
        assert response.content == (VENDOR_DIR / asset.path).read_bytes()
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (await client.get(f"{ASSETS_PREFIX}/{asset.path}", headers={"if-none-match": response.headers["etag"]})).status_code == 304


class TestGraphiQLOff:
    @pytest.fixture
    def web_settings(self, tmp_path: Path) -> Settings:
        return api_settings(tmp_path, debug=False, graphiql=False)

    async def test_neither_the_page_nor_its_assets_are_served(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        asset = await client.get(f"{ASSETS_PREFIX}/{load_assets()[0].path}")

        assert page.status_code == 404
        assert asset.status_code == 404
        assert (await client.get("/")).status_code == 200  # the SPA stays
