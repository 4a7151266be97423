"""vendor.py: copies only the pinned bytes of the pinned versions, and leaves nothing stale behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphql_api.web.vendor import VendorAsset, VendorError, subresource_integrity, vendor

SCRIPT = b"window.Thing = 1;\n"


def fake_package(node_modules: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    package = node_modules / name
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": name, "version": version}))
    for path, data in files.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_bytes(data)


@pytest.fixture
def node_modules(tmp_path: Path) -> Path:
    fake_package(tmp_path / "node_modules", "thing", "1.2.3", {"umd/thing.min.js": SCRIPT})
    return tmp_path / "node_modules"


def pinned(**changes: str) -> VendorAsset:
    fields = {"package": "thing", "version": "1.2.3", "file": "umd/thing.min.js", "integrity": subresource_integrity(SCRIPT)}
    return VendorAsset(**{**fields, **changes})


def test_the_pinned_file_is_copied_under_its_versioned_path(node_modules: Path, tmp_path: Path) -> None:
    target = tmp_path / "vendor"
    (target / "old@0.1").mkdir(parents=True)
    (target / "old@0.1" / "stale.js").write_text("stale")

    vendor([pinned()], node_modules, target)

    assert sorted(str(path.relative_to(target)) for path in target.rglob("*") if path.is_file()) == ["thing@1.2.3/thing.min.js"]
    assert (target / "thing@1.2.3" / "thing.min.js").read_bytes() == SCRIPT


def test_a_file_that_is_not_the_pinned_bytes_is_refused_and_nothing_is_replaced(node_modules: Path, tmp_path: Path) -> None:
    target = tmp_path / "vendor"
    target.mkdir()
    (target / "kept.js").write_text("previous install")
    (node_modules / "thing" / "umd" / "thing.min.js").write_bytes(SCRIPT + b"alert('tampered');\n")

    with pytest.raises(VendorError, match="is not the pinned"):
        vendor([pinned()], node_modules, target)

    assert (target / "kept.js").read_text() == "previous install"


def test_another_installed_version_is_refused(node_modules: Path, tmp_path: Path) -> None:
    with pytest.raises(VendorError, match="thing 1.2.3 is installed but the manifest pins 2.0.0"):
        vendor([pinned(version="2.0.0")], node_modules, tmp_path / "vendor")


def test_a_missing_install_says_to_run_npm_ci(tmp_path: Path) -> None:
    with pytest.raises(VendorError, match="npm ci --prefix graphql_api/web"):
        vendor([pinned()], tmp_path / "node_modules", tmp_path / "vendor")


def test_sha512_pins_are_checked_too(node_modules: Path, tmp_path: Path) -> None:
    vendor([pinned(integrity=subresource_integrity(SCRIPT, "sha512"))], node_modules, tmp_path / "vendor")

    with pytest.raises(VendorError):
        vendor([pinned(integrity=subresource_integrity(b"other", "sha512"))], node_modules, tmp_path / "vendor")
