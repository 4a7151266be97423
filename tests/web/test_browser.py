"""A person's path through the SPA and GraphiQL, in Debian's Chromium driven by Playwright, on a real `bookrec serve`.

The server is a subprocess on a free port with DEBUG=true over a SQLite file seeded
here. The browser may reach nothing but that server: cover images come from a fake
host the test answers itself, and every other request is aborted and recorded, so a
page that tried a CDN fails the test. Screenshots go to tests/artifacts/ (CI keeps them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from adapters.sqlite_store import open_sqlite_stores
from domain.models import Book, Rating
from graphql_api.auth import TokenAuthority
from graphql_api.settings import Settings
from tests.redis_servers import free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
SECRET = "browser-tests-secret-of-32-bytes-or-more"
COVERS_HOST = "covers.bookrec.test"
READER = "1"
LIMIT = 12  # what the SPA asks for

ADJECTIVES = ["Silent", "Hidden", "Golden", "Last", "Winter", "Distant", "Paper", "Burning", "Quiet", "Iron", "Glass", "Wild"]
NOUNS = ["River", "Garden", "Lighthouse", "Orchard", "Archive", "Harbour", "Comet", "Mountain"]
AUTHORS = ["Ada Winslow", "Tomas Reyes", "Mira Okafor", "Jun Park", "Elena Sorensen", "Sam Whitaker", "Noor Haddad"]


def seed_catalog() -> tuple[list[Book], list[Rating]]:
    """48 books (a third without a cover) and 30 readers with overlapping tastes, so reader 1 gets COLLABORATIVE picks."""
    chooser = random.Random(11)
    books = [
        Book(
            id=book_id,
            title=f"The {ADJECTIVES[book_id % len(ADJECTIVES)]} {NOUNS[book_id % len(NOUNS)]}" + (f" {book_id // 12 + 1}" if book_id > 12 else ""),
            authors=(AUTHORS[book_id % len(AUTHORS)],) + ((AUTHORS[(book_id + 3) % len(AUTHORS)],) if book_id % 5 == 0 else ()),
            publication_year=1950 + book_id,
            image_url=None if book_id % 3 == 0 else f"https://{COVERS_HOST}/{book_id}.svg",
            average_rating=3.0 + (book_id % 20) / 10,
            ratings_count=1000 - book_id,
        )
        for book_id in range(1, 49)
    ]
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    ratings = [
        Rating(str(user), book_id, chooser.randint(3, 5) if book_id % 2 == user % 2 else chooser.randint(1, 3), start + timedelta(days=user + index))
        for user in range(1, 31)
        for index, book_id in enumerate(chooser.sample(range(1, 31), 9))
    ]
    return books, ratings


async def write_database(path: Path, books: list[Book], ratings: list[Rating]) -> None:
    ratings_store, catalog = open_sqlite_stores(path)
    try:
        await catalog.put_many(books)
        await ratings_store.put_many(ratings)
    finally:
        await ratings_store.aclose()


def cover_svg(book_id: str) -> str:
    hue = int(book_id) * 37 % 360
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="88" height="132">'
        f'<rect width="88" height="132" fill="hsl({hue},45%,42%)"/>'
        f'<text x="44" y="74" font-size="22" fill="#fff" text-anchor="middle" font-family="sans-serif">#{book_id}</text></svg>'
    )


@dataclass
class Server:
    url: str
    env: dict[str, str]
    ratings: list[Rating]

    def token(self, user_id: str) -> str:
        """A token from the real `bookrec token` command, as a person would get one."""
        command = [sys.executable, "-m", "graphql_api.cli", "token", "--user", user_id]
        return subprocess.run(command, env=self.env, cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("browser-server")
    books, ratings = seed_catalog()
    # In its own thread: once Playwright's sync API has started, this thread has an event loop running.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, write_database(directory / "bookrec.db", books, ratings)).result()
    port = free_port()
    # Only what this test sets: a REDIS_URL or DYNAMODB_TABLE in the caller's environment must not leak in.
    env = {name: value for name, value in os.environ.items() if name.lower() not in Settings.model_fields}
    env |= {"DEBUG": "true", "SQLITE_PATH": str(directory / "bookrec.db"), "AUTH_JWT_SECRET": SECRET, "MODEL_REFRESH_SECONDS": "0"}
    log_path = directory / "server.log"
    command = [sys.executable, "-m", "graphql_api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"`bookrec serve` exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`bookrec serve` was not ready within 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Server(url, env, ratings)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (`apt-get install -y chromium`); browser tests never skip")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Network:
    """What a page asked for: GraphQL calls to the service, and anything it tried elsewhere (aborted)."""

    service: str
    blocked: list[str] = field(default_factory=list)
    graphql: list[tuple[str, str]] = field(default_factory=list)  # (method, operationName)
    held: list[Route] = field(default_factory=list)
    hold: set[str] = field(default_factory=set)  # operations to keep unanswered until the test releases them

    def handle(self, route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        if f"{url.scheme}://{url.netloc}" == self.service:
            if url.path == "/graphql" and request.resource_type in {"fetch", "xhr"}:
                body = json.loads(request.post_data or "{}")
                name = body.get("operationName") or parse_qs(url.query).get("operationName", [""])[0]
                self.graphql.append((request.method, name))
                if name in self.hold:
                    self.held.append(route)
                    return
            route.continue_()
        elif url.netloc == COVERS_HOST:
            route.fulfill(status=200, content_type="image/svg+xml", body=cover_svg(Path(url.path).stem))
        else:
            self.blocked.append(request.url)
            route.abort()


def open_page(browser: Browser, server: Server, *, width: int = 1280, height: int = 900) -> tuple[Page, Network]:
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    network = Network(server.url)
    context.route("**/*", network.handle)
    return context.new_page(), network


def cards(page: Page):  # noqa: ANN201  (a Playwright Locator)
    return page.locator("#books li.card:not(.skeleton)")


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def show_reader(page: Page, user_id: str) -> None:
    page.get_by_label("Reader (user id)").fill(user_id)
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name=f"Recommendations for reader {user_id}")).to_be_visible()
    expect(cards(page)).to_have_count(LIMIT)


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Sign-in token (needed to rate)").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_choose_a_reader_sign_in_rate_and_get_a_new_list(browser: Browser, server: Server) -> None:
    page, network = open_page(browser, server)
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Popular books")).to_be_visible()
    expect(cards(page)).to_have_count(LIMIT)

    show_reader(page, READER)
    expect(page.locator("#books .badge.collaborative").first).to_be_visible()
    expect(page.locator("#books .score").first).to_have_text(re.compile(r"^score -?\d+\.\d\d$"))
    expect(page.locator("#books .cover img").first).to_be_visible()  # covers from the catalog's image URLs
    reader_ratings = sum(1 for rating in server.ratings if rating.user_id == READER)
    expect(page.locator("#ratings-count")).to_have_text(f"{reader_ratings} books rated")

    sign_in(page, server.token(READER))
    expect(page.locator("#signed-in-as")).to_contain_text(f"Signed in as reader {READER}")

    first = cards(page).first
    book_id = first.get_attribute("data-book-id")
    title = first.locator(".title").inner_text()
    network.hold = {"RateBook"}
    first.get_by_role("button", name="Rate 4 of 5 stars").click()
    # The rated book leaves at once, while the server has not answered yet.
    expect(page.locator(f'#books li[data-book-id="{book_id}"]')).to_have_count(0)
    assert len(network.held) == 1
    network.hold.clear()
    network.held.pop().continue_()

    expect(page.locator("#list-status")).to_have_text(f"Rated “{title}” 4 of 5 stars. Your recommendations are updated.")
    expect(cards(page)).to_have_count(LIMIT)
    expect(page.locator(f'#books li[data-book-id="{book_id}"]')).to_have_count(0)
    expect(page.locator("#ratings-count")).to_have_text(f"{reader_ratings + 1} books rated")
    expect(page.locator("#ratings li").first.locator(".rated-title")).to_have_text(title)
    page.mouse.move(0, 0)  # no hover highlight in the picture
    screenshot(page, "spa-desktop.png")

    # The reference client speaks APQ: once registered, a reload asks by hash over GET and nothing else.
    assert ("GET", "UserPage") in network.graphql
    network.graphql.clear()
    page.reload()
    expect(cards(page)).to_have_count(LIMIT)
    assert network.graphql == [("GET", "UserPage")]
    assert network.blocked == []


def test_skeletons_hold_the_place_of_the_cards_so_nothing_jumps(browser: Browser, server: Server) -> None:
    page, network = open_page(browser, server)
    page.goto(server.url + "/")
    expect(cards(page)).to_have_count(LIMIT)
    network.hold = {"UserPage"}
    page.get_by_label("Reader (user id)").fill("3")
    page.get_by_role("button", name="Show").click()

    skeletons = page.locator("#books li.card.skeleton")
    expect(skeletons).to_have_count(LIMIT)
    expect(page.locator("#list-status")).to_have_text("Loading recommendations…")
    page.mouse.move(0, 0)
    screenshot(page, "spa-loading.png")
    loading_boxes = [skeletons.nth(index).bounding_box() for index in range(LIMIT)]
    network.hold.clear()
    network.held.pop().continue_()

    expect(cards(page)).to_have_count(LIMIT)
    assert [cards(page).nth(index).bounding_box() for index in range(LIMIT)] == loading_boxes
    assert network.blocked == []


def test_a_token_the_server_rejects_is_explained_and_the_book_comes_back(browser: Browser, server: Server) -> None:
    page, network = open_page(browser, server)
    page.goto(server.url + f"/?user={READER}")
    expect(cards(page)).to_have_count(LIMIT)
    forged = TokenAuthority("a-different-secret-of-32-bytes-or-more").issue(READER)
    sign_in(page, forged)

    first = cards(page).first
    book_id = first.get_attribute("data-book-id")
    first.get_by_role("button", name="Rate 2 of 5 stars").click()

    expect(page.get_by_role("alert")).to_contain_text("Your sign-in token was not accepted")
    expect(page.locator(f'#books li[data-book-id="{book_id}"]')).to_have_count(1)
    expect(cards(page)).to_have_count(LIMIT)
    assert network.blocked == []


def test_at_phone_width_with_the_keyboard(browser: Browser, server: Server) -> None:
    page, network = open_page(browser, server, width=390, height=844)
    page.goto(server.url + "/")
    sign_in(page, server.token("2"))  # signing in shows that reader's own list
    expect(page.get_by_role("heading", name="Recommendations for reader 2")).to_be_visible()
    expect(cards(page)).to_have_count(LIMIT)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone

    first = cards(page).first
    book_id = first.get_attribute("data-book-id")
    first.get_by_role("button", name="Rate 5 of 5 stars").focus()
    page.keyboard.press("Enter")

    expect(page.locator(f'#books li[data-book-id="{book_id}"]')).to_have_count(0)
    expect(page.locator("#list-status")).to_contain_text("Your recommendations are updated.")
    expect(cards(page)).to_have_count(LIMIT)
    # Focus stays on a star (of the next book) or the list heading, never lost with the removed card.
    assert page.evaluate("document.activeElement.closest('#books .stars, #list-heading') !== null")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    screenshot(page, "spa-phone.png")
    assert network.blocked == []


def test_graphiql_runs_a_query_with_everything_but_the_service_blocked(browser: Browser, server: Server) -> None:
    page, network = open_page(browser, server, width=1400, height=900)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(server.url + "/graphql")
    expect(page.locator(".graphiql-query-editor")).to_contain_text("query Recommendations")
    expect(page.locator(".graphiql-editor-tool")).to_contain_text("Authorization")
    with page.expect_response(lambda response: response.url.endswith("/graphql") and "Recommendations" in (response.request.post_data or "")) as answer:
        page.locator(".graphiql-execute-button").click()

    body = answer.value.json()
    assert "errors" not in body
    assert body["data"]["user"]["recommendations"] and body["data"]["popularBooks"]
    # The result pane shows the data (CodeMirror renders only the lines in view, so look at the top ones).
    result = page.locator(".result-window")
    expect(result).to_contain_text('"recommendations"')
    expect(result).to_contain_text(f'"title": "{body["data"]["user"]["recommendations"][0]["book"]["title"]}"')
    screenshot(page, "graphiql.png")
    assert network.blocked == []
    assert errors == []
