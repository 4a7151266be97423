"""Trained item models in a local directory or under an S3 prefix (domain.ports.ModelRepository).

The layout is the same in both, as paths or as object keys:

    LATEST                              "<version>\\n": the version to serve
    versions/<version>/<name>.npy       one file per array (np.save, no pickles)
    versions/<version>/manifest.json    the artifact's manifest plus "files" (bytes, sha256, dtype, shape
                                        per array), written LAST

A reader never sees half a model: a version counts only once its manifest exists and
its files match it, and `LATEST` moves after that in one atomic step (os.replace of a
file, or one S3 PUT). Readers check sizes and sha256 before mapping, so a truncated
copy or a flipped bit is an ArtifactError naming the file, not a model serving garbage.

Arrays are memory-mapped read-only (np.load mmap_mode="r"): every worker process on a
host maps the same page-cache pages instead of holding its own copy. The S3 store
downloads a version once into a local cache directory and maps it from there, through
the same verifying loader as the local store (`open_version_dir`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import numpy as np
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from adapters.dynamodb_store import _gather_bounded, _session
from domain.models import ArtifactError, ModelArtifact

logger = logging.getLogger("bookrec.model_store")

LATEST = "LATEST"
VERSIONS = "versions"
MANIFEST = "manifest.json"
PARTIAL_PREFIX = ".partial-"  # a version being written (or downloaded); readers never look at these
DELETING_PREFIX = ".deleting-"  # a version renamed out of readers' sight, then removed
# A partial version untouched this long is a training run (or download) that died half-way.
STALE_PARTIAL_SECONDS = 3600.0
CHUNK_BYTES = 1 << 20  # hashing and download chunk
TRANSFER_CONCURRENCY = 8  # S3 objects in flight at once per publish, download or listing

S3_CLIENT_CONFIG = AioConfig(
    retries={"total_max_attempts": 3, "mode": "standard"},
    connect_timeout=2,
    read_timeout=20,  # per socket read, not per object: a large model streams for longer, a hung socket does not
    max_pool_connections=16,
)

# Names become directory names and object keys: no separators, no leading dot (ours), bounded.
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# --- the verifying loader and writer both stores share ----------------------------------------


def open_version_dir(directory: Path, version: str, where: str) -> ModelArtifact:
    """Read `directory`'s manifest, check every file's size and sha256 against it, and memory-map the arrays.

    The one read path of both stores (the S3 store calls it on its cache). Blocking:
    call it in a thread. Any problem is an ArtifactError naming `version`, `where` and why.
    """
    try:
        try:
            raw = (directory / MANIFEST).read_bytes()
        except FileNotFoundError:
            if not directory.is_dir():
                raise ArtifactError(f"model {version} at {where} does not exist") from None
            raise ArtifactError(f"model {version} at {where} is damaged: manifest.json is missing") from None
        manifest = parse_manifest(raw, version, where)
        problem = _file_problem(directory, manifest["files"])
        if problem:
            raise ArtifactError(f"model {version} at {where} is damaged: {problem}")
        return ModelArtifact(manifest=manifest, arrays=_map_arrays(directory, manifest, version, where))
    except OSError as error:
        raise ArtifactError(f"cannot read model {version} at {where}: {_one_line(error)}") from error


def parse_manifest(raw: bytes, version: str, where: str) -> dict[str, Any]:
    """A manifest.json's content, checked for the shape the loader relies on (not yet against the files)."""
    damaged = f"model {version} at {where} is damaged: manifest.json"
    try:
        manifest = json.loads(raw)
    except ValueError as error:  # UnicodeDecodeError included
        raise ArtifactError(f"{damaged} is not valid JSON ({_one_line(error)})") from error
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{damaged} is not a JSON object")
    if manifest.get("version") != version:
        # A directory copied or renamed by hand: its arrays may belong to another model.
        raise ArtifactError(f"{damaged} names version {manifest.get('version')!r}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{damaged} has no files table")
    for name, entry in files.items():
        valid = (
            _ARRAY_NAME.fullmatch(name)
            and isinstance(entry, dict)
            and type(entry.get("bytes")) is int
            and isinstance(entry.get("sha256"), str)
        )
        if not valid:  # a name like "../x" must never become a path
            raise ArtifactError(f"{damaged} has an invalid files entry {name!r}")
    return manifest


def _file_problem(directory: Path, files: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The first way the directory's files differ from the manifest's table, or None when all match."""
    sizes = {}
    for name in files:
        with contextlib.suppress(FileNotFoundError):
            sizes[f"{name}.npy"] = (directory / f"{name}.npy").stat().st_size
    problem = _size_problem(files, sizes)
    if problem:
        return problem  # before hashing: a truncated file costs a stat, not a read
    for name, entry in files.items():
        digest = _sha256(directory / f"{name}.npy")
        if digest != entry["sha256"]:
            return f"{name}.npy has sha256 {digest} but the manifest says {entry['sha256']}"
    return None


def _size_problem(files: Mapping[str, Mapping[str, Any]], sizes: Mapping[str, int]) -> str | None:
    """Sizes (by file name) against the manifest's table: local stats and S3 listings alike."""
    for name, entry in files.items():
        filename = f"{name}.npy"
        if filename not in sizes:
            return f"{filename} is missing"
        if sizes[filename] != entry["bytes"]:
            return f"{filename} has {sizes[filename]} bytes but the manifest says {entry['bytes']}"
    return None


def _map_arrays(directory: Path, manifest: Mapping[str, Any], version: str, where: str) -> dict[str, np.ndarray]:
    arrays = {}
    for name in manifest["files"]:
        try:
            arrays[name] = np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as error:  # hash matched, so the manifest itself describes a bad file
            raise ArtifactError(f"model {version} at {where} is damaged: {name}.npy is not an array ({_one_line(error)})") from error
    return arrays


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _write_version_dir(directory: Path, artifact: ModelArtifact, *, durable: bool) -> dict[str, Any]:
    """Create `directory` with one .npy per array, then the manifest (with the files table) last; returns it.

    `durable` fsyncs every file and the directory, so that a rename of the directory
    after a crash never publishes files whose blocks were not yet written.
    """
    directory.mkdir()
    files: dict[str, dict[str, Any]] = {}
    for name, array in artifact.arrays.items():
        array = np.asarray(array)
        path = directory / f"{name}.npy"
        with path.open("xb") as file:
            np.save(file, array, allow_pickle=False)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        # Hashing the written file rather than the array: the manifest must describe the bytes on disk.
        files[name] = {"bytes": path.stat().st_size, "sha256": _sha256(path), "dtype": str(array.dtype), "shape": list(array.shape)}
    manifest = {**artifact.manifest, "files": files}
    _write_file(directory / MANIFEST, _manifest_bytes(manifest), durable=durable)
    if durable:
        _fsync_dir(directory)
    return manifest


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"


def _write_file(path: Path, data: bytes, *, durable: bool) -> None:
    with path.open("xb") as file:
        file.write(data)
        if durable:
            file.flush()
            os.fsync(file.fileno())


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_dir(path: Path) -> None:
    """Rename the directory out of readers' sight first, then delete it: no reader finds it half-deleted.

    A process that has the old arrays mapped keeps reading them: unlinked files live on
    until their last mapping goes.
    """
    aside = path.parent / f"{DELETING_PREFIX}{path.name}-{secrets.token_hex(4)}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process removed it first
    shutil.rmtree(aside, ignore_errors=True)


def _rename_new_dir(source: Path, target: Path) -> bool:
    """Rename `source` to `target`; False when `target` already exists (another writer got there first)."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _sweep(directory: Path) -> None:
    """Remove leftovers: `.deleting-*` dirs, and `.partial-*` dirs untouched for STALE_PARTIAL_SECONDS (killed writers)."""
    now = time.time()
    for entry in directory.iterdir():
        if entry.name.startswith(DELETING_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(PARTIAL_PREFIX) and now - _last_touched(entry, now) > STALE_PARTIAL_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)


def _last_touched(directory: Path, now: float) -> float:
    """The newest mtime of the directory and its files (a big file being written does not touch the directory)."""
    try:
        return max([directory.stat().st_mtime, *(child.stat().st_mtime for child in directory.iterdir())])
    except OSError:
        return now  # vanishing under us: someone else is dealing with it


# --- manifests, names, LATEST -------------------------------------------------------------------


def _validated(artifact: ModelArtifact) -> str:
    """The artifact's version, after the checks that make it storable; ValueError names what is wrong."""
    version = artifact.manifest.get("version")
    if not isinstance(version, str) or not _VERSION_NAME.fullmatch(version):
        raise ValueError(f"model version {version!r} is not a name of letters, digits, '.', '_' or '-' (at most 128)")
    if _created_at(artifact.manifest) is None:
        # Pruning keeps the newest by created_at; without one a version's age is unknown.
        raise ValueError(f"model {version}: manifest needs created_at (ISO-8601 or unix seconds)")
    for name, array in artifact.arrays.items():
        if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name):
            raise ValueError(f"model {version}: array name {name!r} is not a plain file name")
        if np.asarray(array).dtype.hasobject:
            raise ValueError(f"model {version}: array {name!r} holds Python objects, which are stored only as pickles")
    try:
        json.dumps(dict(artifact.manifest))
    except (TypeError, ValueError) as error:
        raise ValueError(f"model {version}: manifest is not JSON ({error})") from error
    return version


def _created_at(manifest: Mapping[str, Any]) -> float | None:
    value = manifest.get("created_at")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return None


def _newest_first(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def age(manifest: dict[str, Any]) -> tuple[float, str]:
        created = _created_at(manifest)
        return (float("-inf") if created is None else created, str(manifest["version"]))

    return sorted(manifests, key=age, reverse=True)


def _doomed(manifests: list[dict[str, Any]], keep: int, latest: str | None) -> list[str]:
    """Versions beyond the `keep` newest, except the one LATEST names (a rollback may point at an old one)."""
    return [m["version"] for m in _newest_first(manifests)[keep:] if m["version"] != latest]


def _check_version_name(version: str, where: str) -> None:
    if not isinstance(version, str) or not _VERSION_NAME.fullmatch(version):
        raise ArtifactError(f"{version!r} is not a model version name (model store at {where})")


def _parse_latest(raw: bytes, where: str) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    if not _VERSION_NAME.fullmatch(text):
        raise ArtifactError(f"LATEST of the model store at {where} is damaged: it holds {text[:80]!r}, not a version name")
    return text


def _one_line(error: object) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --- the local store --------------------------------------------------------------------------


class LocalModelStore:
    """domain.ports.ModelRepository in a directory: versions are renamed into place whole, LATEST is os.replace'd.

    Every method does its file I/O in a thread: a serving process calls them on its event loop.
    """

    def __init__(self, root: Path, *, keep: int = 5) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.root = Path(root)
        self.keep = keep
        self.where = str(self.root)

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS

    async def latest_version(self) -> str | None:
        return await asyncio.to_thread(self._latest_version)

    async def load(self, version: str) -> ModelArtifact:
        _check_version_name(version, self.where)
        return await asyncio.to_thread(open_version_dir, self.versions_dir / version, version, self.where)

    async def publish(self, artifact: ModelArtifact) -> str:
        version = _validated(artifact)
        await asyncio.to_thread(self._publish, artifact, version)
        return version

    async def versions(self) -> list[dict[str, object]]:
        return await asyncio.to_thread(self._versions)

    async def use(self, version: str) -> None:
        await self.load(version)  # verifies it: a rollback to a damaged version must fail here, not in every worker
        await asyncio.to_thread(self._point_latest_at, version)

    def _latest_version(self) -> str | None:
        try:
            raw = (self.root / LATEST).read_bytes()
        except FileNotFoundError:
            return None  # nothing published yet (or no root at all)
        except OSError as error:
            raise ArtifactError(f"cannot read LATEST of the model store at {self.where}: {_one_line(error)}") from error
        return _parse_latest(raw, self.where)

    def _publish(self, artifact: ModelArtifact, version: str) -> None:
        try:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            target = self.versions_dir / version
            if not self._is_complete(target, version):
                self._install(artifact, version, target)
        except OSError as error:
            raise ArtifactError(f"could not publish model {version} at {self.where}: {_one_line(error)}") from error
        self._point_latest_at(version)
        try:
            self._prune()
        except (OSError, ArtifactError) as error:  # the version is published; old ones linger until the next publish
            logger.warning("published model %s at %s but could not prune old versions: %s", version, self.where, error)

    def _is_complete(self, directory: Path, version: str) -> bool:
        """Whether the version is already there, whole and verified (same version, same content: keep it)."""
        if not directory.is_dir():
            return False
        try:
            open_version_dir(directory, version, self.where)
        except ArtifactError as error:
            logger.warning("%s; publishing it again", error)
            return False
        return True

    def _install(self, artifact: ModelArtifact, version: str, target: Path) -> None:
        partial = target.parent / f"{PARTIAL_PREFIX}{version}-{secrets.token_hex(4)}"
        try:
            _write_version_dir(partial, artifact, durable=True)
            if not _rename_new_dir(partial, target):
                if self._is_complete(target, version):
                    return  # a concurrent publisher of the same version won: its copy is as good as ours
                _remove_dir(target)  # a damaged copy: replace it
                os.rename(partial, target)
            _fsync_dir(target.parent)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)

    def _point_latest_at(self, version: str) -> None:
        temporary = self.root / f".LATEST.{secrets.token_hex(4)}"
        try:
            _write_file(temporary, f"{version}\n".encode(), durable=True)
            os.replace(temporary, self.root / LATEST)  # atomic: a reader sees the old name or the new, never neither
            _fsync_dir(self.root)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise ArtifactError(f"could not point LATEST at model {version} at {self.where}: {_one_line(error)}") from error

    def _complete_manifests(self) -> list[dict[str, Any]]:
        """Manifests of the version directories whose files are all there at their sizes (no hashing: a listing)."""
        try:
            entries = sorted(self.versions_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ArtifactError(f"cannot list the model store at {self.where}: {_one_line(error)}") from error
        manifests = []
        for entry in entries:
            if not _VERSION_NAME.fullmatch(entry.name):
                continue  # .partial-*, .deleting-*: not versions
            try:
                manifest = parse_manifest((entry / MANIFEST).read_bytes(), entry.name, self.where)
                sizes = {child.name: child.stat().st_size for child in entry.iterdir()}
            except (OSError, ArtifactError):
                continue  # no manifest, a damaged one, or removed while we looked
            if _size_problem(manifest["files"], sizes) is None:
                manifests.append(manifest)
        return manifests

    def _versions(self) -> list[dict[str, object]]:
        latest = self._latest_version()
        return [{**manifest, "latest": manifest["version"] == latest} for manifest in _newest_first(self._complete_manifests())]

    def _prune(self) -> None:
        latest = self._latest_version()  # read again: another process may have moved it
        for version in _doomed(self._complete_manifests(), self.keep, latest):
            _remove_dir(self.versions_dir / version)
        _sweep(self.versions_dir)


# --- the S3 store -----------------------------------------------------------------------------


class S3ModelStore:
    """domain.ports.ModelRepository under an S3 prefix, read through a local cache directory.

    S3 has no rename, so completeness is by order: a version's arrays are PUT first, its
    manifest after them, LATEST last; each PUT is atomic. `load` downloads a version
    into `cache_dir/<version>` once (into a `.partial-*` directory, verified, renamed)
    and every later load, in this process or another on the host, maps that copy.
    """

    def __init__(self, client: Any, bucket: str, prefix: str, *, cache_dir: Path, keep: int = 5) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = Path(cache_dir)
        self.keep = keep
        self.where = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    async def latest_version(self) -> str | None:
        with self._failures("reading LATEST"):
            raw = await self._get(self.key(LATEST))
        return None if raw is None else _parse_latest(raw, self.where)

    async def load(self, version: str) -> ModelArtifact:
        _check_version_name(version, self.where)
        cached = self.cache_dir / version
        try:
            artifact = await asyncio.to_thread(self._open_cached, cached, version)
        except ArtifactError as error:
            logger.warning("%s; downloading it again", error)
            with self._failures(f"clearing the cached model {version}"):
                await asyncio.to_thread(_remove_dir, cached)
            artifact = None
        if artifact is not None:
            return artifact
        return await self._download(version, cached)

    async def publish(self, artifact: ModelArtifact) -> str:
        version = _validated(artifact)
        with self._failures(f"publishing model {version}"):
            if await self._remote_problem(version) is not None:
                await self._upload(artifact, version)
            await self._put(self.key(LATEST), f"{version}\n".encode())
        try:
            await self._prune()
        except ArtifactError as error:  # the version is published; old ones linger until the next publish
            logger.warning("published model %s at %s but could not prune old versions: %s", version, self.where, error)
        return version

    async def versions(self) -> list[dict[str, object]]:
        latest = await self.latest_version()
        with self._failures("listing model versions"):
            manifests = await self._complete_manifests(await self._list_versions())
        return [{**manifest, "latest": manifest["version"] == latest} for manifest in _newest_first(manifests)]

    async def use(self, version: str) -> None:
        _check_version_name(version, self.where)
        with self._failures(f"checking model {version}"):
            problem = await self._remote_problem(version)
        if problem is not None:
            # Checked in S3, not just in our cache: every other host will download it from there.
            raise ArtifactError(f"model {version} at {self.where} {problem}")
        await self.load(version)
        with self._failures(f"pointing LATEST at model {version}"):
            await self._put(self.key(LATEST), f"{version}\n".encode())

    # reading

    def _open_cached(self, cached: Path, version: str) -> ModelArtifact | None:
        if not cached.is_dir():
            return None
        artifact = open_version_dir(cached, version, f"{self.where} (cached in {self.cache_dir})")
        with contextlib.suppress(OSError):
            os.utime(cached)  # most recently used: the cache sweep keeps it
        return artifact

    async def _download(self, version: str, cached: Path) -> ModelArtifact:
        with self._failures(f"downloading model {version}"):
            raw = await self._get(self.key(VERSIONS, version, MANIFEST))
            if raw is None:
                raise ArtifactError(f"model {version} at {self.where} does not exist")
            manifest = parse_manifest(raw, version, self.where)
            partial = self.cache_dir / f"{PARTIAL_PREFIX}{version}-{secrets.token_hex(4)}"
            await asyncio.to_thread(partial.mkdir, parents=True)
            try:
                await _gather_bounded(
                    [functools.partial(self._download_file, version, name, partial) for name in manifest["files"]],
                    TRANSFER_CONCURRENCY,
                )
                return await asyncio.to_thread(self._settle, partial, raw, manifest, version, cached)
            finally:
                await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)

    async def _download_file(self, version: str, name: str, directory: Path) -> None:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=self.key(VERSIONS, version, f"{name}.npy"))
        except ClientError as error:
            if _is_not_found(error):
                raise ArtifactError(f"model {version} at {self.where} is damaged: {name}.npy is missing") from error
            raise
        file = await asyncio.to_thread((directory / f"{name}.npy").open, "xb")
        body = response["Body"]  # `async with` on it yields aiohttp's response; botocore's wrapper checks the length
        try:
            async with body:
                async for chunk in body.iter_chunks(CHUNK_BYTES):
                    await asyncio.to_thread(file.write, chunk)
        finally:
            await asyncio.to_thread(file.close)

    def _settle(self, partial: Path, raw: bytes, manifest: dict[str, Any], version: str, cached: Path) -> ModelArtifact:
        """Verify the download, move it into the cache, map it. No fsync: every load verifies the cache again."""
        problem = _file_problem(partial, manifest["files"])
        if problem:
            raise ArtifactError(f"model {version} at {self.where} is damaged: {problem}")
        _write_file(partial / MANIFEST, raw, durable=False)
        if _rename_new_dir(partial, cached):
            artifact = ModelArtifact(manifest=manifest, arrays=_map_arrays(cached, manifest, version, self.where))
        else:  # another worker on this host downloaded it at the same time: use its copy
            artifact = open_version_dir(cached, version, f"{self.where} (cached in {self.cache_dir})")
        self._sweep_cache(keep=version)
        return artifact

    def _sweep_cache(self, keep: str) -> None:
        """Keep the `keep` most recently used cached versions (and `keep`); drop stale partial downloads.

        Another worker still mapping a removed version keeps its pages (see _remove_dir).
        """
        cached = [entry for entry in self.cache_dir.iterdir() if _VERSION_NAME.fullmatch(entry.name) and entry.is_dir()]
        cached.sort(key=lambda entry: _last_touched(entry, time.time()), reverse=True)
        for entry in cached[self.keep :]:
            if entry.name != keep:
                _remove_dir(entry)
        _sweep(self.cache_dir)

    async def _remote_problem(self, version: str) -> str | None:
        """Why the version is not complete in S3 ("does not exist", "is damaged: ..."), or None when it is."""
        listing = await self._list_versions(only=version)
        try:
            await self._remote_manifest(version, listing.get(version, {}))
        except ArtifactError as error:
            return str(error).removeprefix(f"model {version} at {self.where} ")
        return None

    async def _remote_manifest(self, version: str, objects: Mapping[str, tuple[int, datetime]]) -> dict[str, Any]:
        """The version's manifest when it and every listed object match (sizes); ArtifactError otherwise."""
        raw = await self._get(self.key(VERSIONS, version, MANIFEST)) if MANIFEST in objects else None
        if raw is None:
            raise ArtifactError(f"model {version} at {self.where} does not exist")
        manifest = parse_manifest(raw, version, self.where)
        problem = _size_problem(manifest["files"], {name: size for name, (size, _) in objects.items()})
        if problem:
            raise ArtifactError(f"model {version} at {self.where} is damaged: {problem}")
        return manifest

    async def _complete_manifests(self, listing: Mapping[str, Mapping[str, tuple[int, datetime]]]) -> list[dict[str, Any]]:
        async def complete(version: str) -> dict[str, Any] | None:
            try:
                return await self._remote_manifest(version, listing[version])
            except ArtifactError:
                return None  # incomplete upload, damaged or pruned meanwhile: not a version to offer

        candidates = [version for version, objects in listing.items() if _VERSION_NAME.fullmatch(version) and MANIFEST in objects]
        found = await _gather_bounded([functools.partial(complete, version) for version in candidates], TRANSFER_CONCURRENCY)
        return [manifest for manifest in found if manifest is not None]

    async def _list_versions(self, only: str | None = None) -> dict[str, dict[str, tuple[int, datetime]]]:
        """Objects under versions/ (or one version's), as version -> {name below it: (size, last modified)}."""
        base = self.key(VERSIONS) + "/"
        listing: dict[str, dict[str, tuple[int, datetime]]] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=base + (f"{only}/" if only else "")):
            for item in page.get("Contents", []):
                version, _, name = item["Key"][len(base) :].partition("/")
                if name:
                    listing.setdefault(version, {})[name] = (item["Size"], item["LastModified"])
        return listing

    async def _get(self, key: str) -> bytes | None:
        """A whole (small) object's bytes, or None when there is no such key."""
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        body = response["Body"]
        async with body:  # releases the connection to the pool
            return await body.read()

    # writing

    async def _put(self, key: str, data: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def _upload(self, artifact: ModelArtifact, version: str) -> None:
        """Serialise into a partial dir of the cache, PUT the arrays, then the manifest; the partial is dropped.

        Not kept as the cache's copy: the publisher is a training job, and a served copy
        should come from what S3 holds. One PUT per file reads it whole into memory;
        S3 takes up to 5 GB in one PUT, far above an item model's arrays.
        """
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        partial = self.cache_dir / f"{PARTIAL_PREFIX}{version}-{secrets.token_hex(4)}"
        try:
            manifest = await asyncio.to_thread(_write_version_dir, partial, artifact, durable=False)

            async def put_file(name: str) -> None:
                data = await asyncio.to_thread((partial / name).read_bytes)
                await self._put(self.key(VERSIONS, version, name), data)

            await _gather_bounded([functools.partial(put_file, f"{name}.npy") for name in manifest["files"]], TRANSFER_CONCURRENCY)
            await self._put(self.key(VERSIONS, version, MANIFEST), _manifest_bytes(manifest))  # last: now it is complete
        finally:
            await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)

    async def _prune(self) -> None:
        """Delete versions beyond `keep` (never LATEST's), and uploads without a valid manifest older than an hour."""
        latest = await self.latest_version()
        with self._failures("pruning old model versions"):
            listing = await self._list_versions()
            manifests = await self._complete_manifests(listing)
            complete = {manifest["version"] for manifest in manifests}
            stale_before = datetime.now(timezone.utc) - timedelta(seconds=STALE_PARTIAL_SECONDS)
            abandoned = [
                version
                for version, objects in listing.items()
                if version not in complete and version != latest and max(modified for _, modified in objects.values()) < stale_before
            ]
            doomed = _doomed(manifests, self.keep, latest) + abandoned
            # Manifests first: a reader listing meanwhile sees an incomplete version and skips it.
            await self._delete([self.key(VERSIONS, version, MANIFEST) for version in doomed if MANIFEST in listing[version]])
            await self._delete([self.key(VERSIONS, version, name) for version in doomed for name in listing[version] if name != MANIFEST])

    async def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1000 keys
            batch = keys[start : start + 1000]
            response = await self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise ArtifactError(
                    f"could not delete {len(response['Errors'])} object(s) at {self.where}, "
                    f"e.g. {first.get('Key')}: {first.get('Code')} {_one_line(first.get('Message', ''))}"
                )

    @contextlib.contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """S3, network and cache-disk errors as one-line ArtifactErrors naming what was being done."""
        try:
            yield
        except ClientError as error:
            details = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            reason = f"{details.get('Code', '?')} (HTTP {status}): {_one_line(details.get('Message', ''))}"
            raise ArtifactError(f"{doing} at {self.where} failed: {reason}") from error
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise ArtifactError(f"{doing} at {self.where} failed: {_one_line(error)}") from error


def _is_not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404", "NotFound")


# --- the factory ------------------------------------------------------------------------------


def parse_model_uri(uri: str) -> Path | tuple[str, str]:
    """A local directory for a path or file:// URI, (bucket, prefix) for s3://bucket/prefix; ValueError otherwise."""
    text = uri.strip()
    expected = "expected a directory path, file:///path or s3://bucket/prefix"
    if not text:
        raise ValueError(f"the model store URI is empty: {expected}")
    scheme = _URI_SCHEME.match(text)
    if scheme is None:
        return Path(text)
    name = scheme.group(1).lower()
    parts = urlsplit(text)
    if name == "s3" and text[3:5] == "//":
        if not parts.netloc:
            raise ValueError(f"model store URI {uri!r} names no bucket: {expected}")
        if not _BUCKET_NAME.fullmatch(parts.netloc):
            raise ValueError(f"model store URI {uri!r}: {parts.netloc!r} is not an S3 bucket name")
        if parts.query or parts.fragment:
            raise ValueError(f"model store URI {uri!r} has a query or fragment, which S3 keys here never do")
        return parts.netloc, unquote(parts.path).strip("/")
    if name == "file" and text[5:7] == "//":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"model store URI {uri!r} is not a local file:///path")
        return Path(unquote(parts.path))
    raise ValueError(f"model store URI {uri!r} is not supported: {expected}")


@contextlib.asynccontextmanager
async def open_model_store(
    uri: str,
    *,
    region: str,
    endpoint_url: str | None,
    cache_dir: Path,
    keep: int,
    config: AioConfig = S3_CLIENT_CONFIG,
) -> AsyncIterator[LocalModelStore | S3ModelStore]:
    """The store `uri` names; for S3, with one client (one connection pool) for the context's lifetime.

    `endpoint_url` points the client at moto, MinIO or LocalStack; None is AWS itself.
    """
    where = parse_model_uri(uri)
    if isinstance(where, Path):
        yield LocalModelStore(where, keep=keep)
        return
    bucket, prefix = where
    async with _session(region).client("s3", endpoint_url=endpoint_url, config=config) as client:
        yield S3ModelStore(client, bucket, prefix, cache_dir=cache_dir, keep=keep)
