"""The browser side of the service: the demo SPA at `/` and a GraphiQL whose assets the service serves itself.

Static files carry ETag/Last-Modified (Starlette answers 304 to a matching
conditional request). The SPA's files are revalidated on every load (`no-cache`),
so a deploy shows at once; the vendored GraphiQL files have their version in the
path and are cached for good.
"""

from __future__ import annotations

import json
import secrets
from functools import cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from graphql_api.web.vendor import VENDOR_DIR, VendorAsset, load_assets

if TYPE_CHECKING:
    from graphql_api.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
GRAPHIQL_TEMPLATE = Path(__file__).parent / "graphiql.html"
ASSETS_PREFIX = "/graphiql-assets"

EXAMPLE_QUERY = """\
# bookrec: book recommendations over GraphQL.
#
# Run with the play button or Ctrl-Enter. Queries are
# anonymous. Mutations need the Authorization header
# below: put a token that `make serve` printed (or
# `bookrec token --user 1`) in place of the placeholder.
#
# mutation {
#   rateBook(userId: "1", bookId: "1", rating: 5) {
#     rating { rating ratedAt book { title } }
#   }
# }

query Recommendations {
  user(id: "1") {
    id
    recommendations(limit: 5) {
      score
      source
      book { id title authors }
    }
  }
  popularBooks(limit: 3) { id title ratingsCount }
}
"""
EXAMPLE_HEADERS = '{"Authorization": "Bearer <paste a token from make serve>"}'

# The SPA loads covers from wherever the catalog's image URLs point; nothing else leaves the origin.
SPA_CSP = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SiteFiles(StaticFiles):
    """The SPA's files: revalidated on every load, so a new deploy is never hidden behind a stale copy."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        response.headers["content-security-policy"] = SPA_CSP
        return response


class VendorFiles(StaticFiles):
    """Vendored GraphiQL assets: their path names the version, so a copy never goes stale."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def web_routes(settings: Settings) -> list[BaseRoute]:
    """The SPA at `/` (mount it last: it answers every path no other route took) and, with GraphiQL on, its assets."""
    routes: list[BaseRoute] = []
    if settings.graphiql_enabled:
        routes.append(Mount(ASSETS_PREFIX, app=VendorFiles(directory=VENDOR_DIR, check_dir=False), name="graphiql-assets"))
    routes.append(Mount("/", app=SiteFiles(directory=STATIC_DIR, html=True), name="spa"))
    return routes


def graphiql_response(request: Request) -> Response:
    """GraphiQL loading only this service's vendored assets, with an example tab and the Authorization header to fill."""
    missing = [asset.path for asset in load_assets() if not (VENDOR_DIR / asset.path).is_file()]
    if missing:
        return PlainTextResponse(
            "GraphiQL's assets are not installed (missing " + ", ".join(missing) + "): run `make install`.\n",
            status_code=503,
        )
    nonce = secrets.token_urlsafe(16)
    html = _graphiql_template().substitute(nonce=nonce, defaults=_page_defaults(str(request.url.path)), **_asset_tags())
    return HTMLResponse(
        html,
        headers={
            "cache-control": "no-store",  # each page has its own nonce
            "content-security-policy": (
                f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
            ),
        },
    )


@cache
def _graphiql_template() -> Template:
    return Template(GRAPHIQL_TEMPLATE.read_text(encoding="utf-8"))


@cache
def _asset_tags() -> dict[str, str]:
    assets = load_assets()

    def tag(asset: VendorAsset) -> str:
        url = f"{ASSETS_PREFIX}/{asset.path}"
        if asset.is_stylesheet:
            return f'  <link rel="stylesheet" href="{url}" integrity="{asset.integrity}">'
        return f'  <script src="{url}" integrity="{asset.integrity}"></script>'

    return {
        "stylesheets": "\n".join(tag(asset) for asset in assets if asset.is_stylesheet),
        "scripts": "\n".join(tag(asset) for asset in assets if not asset.is_stylesheet),
    }


def _page_defaults(endpoint: str) -> str:
    defaults = {"endpoint": endpoint, "query": EXAMPLE_QUERY, "headers": EXAMPLE_HEADERS}
    # `<` escaped so that no string in the JSON can close the <script> element it sits in.
    return json.dumps(defaults).replace("<", "\\u003c")
