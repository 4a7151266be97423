"""`bookrec token`: a token the server accepts, for the user and roles asked."""

from __future__ import annotations

import time

import jwt
import pytest

from graphql_api.auth import DEV_JWT_SECRET
from graphql_api.cli import main

SECRET = "cli-tests-secret-that-is-32-bytes-or-longer"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "false")
    monkeypatch.setenv("AUTH_JWT_SECRET", SECRET)


def test_prints_a_token_for_the_user(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "58", "--ttl", "120"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "58"
    assert "roles" not in claims
    assert 110 <= claims["exp"] - time.time() <= 120


def test_admin_adds_the_admin_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "ops", "--admin"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert claims["roles"] == ["admin"]
    assert claims["exp"] - time.time() > 23 * 3600  # a day by default


def test_in_debug_without_a_secret_it_signs_with_the_dev_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.delenv("AUTH_JWT_SECRET")
    assert main(["token", "--user", "58"]) == 0
    assert jwt.decode(capsys.readouterr().out.strip(), DEV_JWT_SECRET, algorithms=["HS256"])["sub"] == "58"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["token", "--user", "58", "--ttl", "0"], "--ttl must be at least 1 second, got 0"),
        (["token", "--user", "  "], "--user must not be empty"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"bookrec token: error: {message}\n"


def test_outside_debug_without_a_secret_it_refuses(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    assert main(["token", "--user", "58"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "AUTH_JWT_SECRET must be set unless DEBUG=true" in err
