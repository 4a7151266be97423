"""`bookrec export-schema` writes the SDL that schema.graphql must equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphql_api.cli import main
from graphql_api.schema import schema_sdl


def test_writes_the_schema_sdl(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"
    assert main(["export-schema", "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == schema_sdl()
    assert "type Query {" in schema_sdl()


def test_an_unwritable_path_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-schema", "--output", str(tmp_path / "missing" / "schema.graphql")]) == 2
    assert capsys.readouterr().err.startswith("bookrec export-schema: error: cannot write ")
