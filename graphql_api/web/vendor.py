"""Copy GraphiQL's pinned browser assets out of node_modules, refusing any whose hash is not the pinned one.

`make install` runs `npm ci` (the lockfile checks each package tarball) and then
this script, which checks each file the page loads against vendor-manifest.json
and copies it to vendor/<package>@<version>/<file>, where the service serves it
under /graphiql-assets/. The page repeats the hashes as integrity= attributes, so
the browser checks them too. Standard library only: it runs before the venv exists.

    python graphql_api/web/vendor.py          copy and verify (exit 1 on any mismatch)
    python graphql_api/web/vendor.py --pin    after a version bump: write the installed files' hashes
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

WEB_DIR = Path(__file__).resolve().parent
MANIFEST_PATH = WEB_DIR / "vendor-manifest.json"
NODE_MODULES = WEB_DIR / "node_modules"
VENDOR_DIR = WEB_DIR / "vendor"
PIN_ALGORITHM = "sha384"


class VendorError(Exception):
    """An asset is missing, of another version, or not the pinned bytes."""


@dataclass(frozen=True, slots=True)
class VendorAsset:
    package: str
    version: str
    file: str
    integrity: str

    @property
    def path(self) -> str:
        """Where it lives under vendor/ and under /graphiql-assets/; versioned, so it can be cached for good."""
        return f"{self.package}@{self.version}/{PurePosixPath(self.file).name}"

    @property
    def is_stylesheet(self) -> bool:
        return self.file.endswith(".css")


def load_assets(manifest_path: Path = MANIFEST_PATH) -> list[VendorAsset]:
    return [VendorAsset(**entry) for entry in json.loads(manifest_path.read_text(encoding="utf-8"))["assets"]]


def subresource_integrity(data: bytes, algorithm: str = PIN_ALGORITHM) -> str:
    """The `integrity=` value (W3C Subresource Integrity) of `data`."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def _installed_bytes(asset: VendorAsset, node_modules: Path) -> bytes:
    package_dir = node_modules / asset.package
    try:
        installed = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["version"]
        data = (package_dir / asset.file).read_bytes()
    except FileNotFoundError as error:
        raise VendorError(f"{error.filename} is missing: run `npm ci --prefix graphql_api/web` (or `make install`) first") from None
    if installed != asset.version:
        raise VendorError(f"{asset.package} {installed} is installed but the manifest pins {asset.version}")
    return data


def vendor(assets: Sequence[VendorAsset], node_modules: Path = NODE_MODULES, target: Path = VENDOR_DIR) -> None:
    """Verify every asset, then replace `target` with exactly these files (so nothing stale is left to serve)."""
    checked: list[tuple[VendorAsset, bytes]] = []
    for asset in assets:
        data = _installed_bytes(asset, node_modules)
        algorithm = asset.integrity.partition("-")[0]
        actual = subresource_integrity(data, algorithm)
        if actual != asset.integrity:
            raise VendorError(f"{asset.package}@{asset.version}/{asset.file}: hash {actual} is not the pinned {asset.integrity}")
        checked.append((asset, data))
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
    try:
        for asset, data in checked:
            destination = staging / asset.path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pin(manifest_path: Path = MANIFEST_PATH, node_modules: Path = NODE_MODULES) -> None:
    """Rewrite the manifest's versions and hashes from what npm installed (for a deliberate upgrade)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    pinned = []
    for entry in manifest["assets"]:
        package_dir = node_modules / entry["package"]
        version = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["version"]
        integrity = subresource_integrity((package_dir / entry["file"]).read_bytes())
        pinned.append(asdict(VendorAsset(entry["package"], version, entry["file"], integrity)))
    manifest["assets"] = pinned
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pin", action="store_true", help="write the installed files' versions and hashes into the manifest")
    args = parser.parse_args(argv)
    try:
        if args.pin:
            pin()
            print(f"pinned {MANIFEST_PATH.name} from {NODE_MODULES}; review the diff before committing")
            return 0
        assets = load_assets()
        vendor(assets)
    except (VendorError, FileNotFoundError) as error:
        print(f"vendor.py: error: {error}", file=sys.stderr)
        return 1
    print(f"vendored {len(assets)} verified GraphiQL assets into {VENDOR_DIR.relative_to(WEB_DIR.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
