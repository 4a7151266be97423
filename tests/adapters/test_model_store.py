"""The model stores: the ModelRepository contract on a local directory and on S3 (moto over real HTTP),
plus what only each can show: partial versions, readers holding old maps, the S3 download cache, outages."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig

import adapters.model_store as model_store_module
from adapters.dynamodb_store import _session
from adapters.model_store import LocalModelStore, S3ModelStore, open_model_store, parse_model_uri
from domain.models import ArtifactError
from tests.contract.model_store_contract import KEEP, ModelStoreContract, artifact, arrays, assert_identical, listed
from tests.moto_server import MOTO_REGION

Change = Callable[[bytes], bytes | None]


# --- the local store -------------------------------------------------------------------------


class TestLocalModelStore(ModelStoreContract):
    @pytest.fixture
    def model_store(self, tmp_path: Path) -> LocalModelStore:
        return LocalModelStore(tmp_path / "model", keep=KEEP)

    @pytest.fixture
    def damage(self, model_store: LocalModelStore) -> Callable[[str, str, Change], Any]:
        async def damage(version: str, name: str, change: Change) -> None:
            path = model_store.root / "versions" / version / name
            data = change(path.read_bytes())
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)

        return damage


@pytest.fixture
def local(tmp_path: Path) -> LocalModelStore:
    return LocalModelStore(tmp_path / "model", keep=KEEP)


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


async def test_the_local_layout_is_latest_and_one_directory_per_version(local: LocalModelStore) -> None:
    await local.publish(artifact("3f2a", 1.0))

    assert (local.root / "LATEST").read_text() == "3f2a\n"
    files = {f"versions/3f2a/{name}.npy" for name in arrays()}
    assert tree(local.root) == {"LATEST", "versions", "versions/3f2a", "versions/3f2a/manifest.json", *files}  # no leftovers
    manifest = json.loads((local.root / "versions/3f2a/manifest.json").read_text())
    assert manifest["version"] == "3f2a"
    assert manifest["files"]["weights"]["shape"] == [3, 4]


async def test_a_missing_root_is_an_empty_store(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path / "not" / "yet")

    assert await store.latest_version() is None
    assert await store.versions() == []
    with pytest.raises(ArtifactError, match="does not exist"):
        await store.load("v1")


async def test_a_partial_version_left_by_a_killed_run_is_ignored(local: LocalModelStore) -> None:
    await local.publish(artifact("v1", 1.0))
    # A run killed after writing every file, manifest included, but before its rename.
    partial = local.root / "versions" / ".partial-v2-1a2b3c4d"
    other = LocalModelStore(local.root.parent / "other")
    await other.publish(artifact("v2", 2.0))
    (other.root / "versions" / "v2").rename(partial)

    assert await local.latest_version() == "v1"
    assert listed(await local.versions()) == [("v1", True)]
    with pytest.raises(ArtifactError, match="v2 .*does not exist"):
        await local.load("v2")
    with pytest.raises(ArtifactError, match="not a model version name"):
        await local.load(partial.name)


async def test_publish_sweeps_partials_older_than_an_hour_and_keeps_fresh_ones(local: LocalModelStore) -> None:
    await local.publish(artifact("v1", 1.0))
    stale, fresh = local.root / "versions" / ".partial-v0-00000000", local.root / "versions" / ".partial-v9-11111111"
    for partial in (stale, fresh):
        partial.mkdir()
        (partial / "weights.npy").write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    for path in (stale / "weights.npy", stale):
        os.utime(path, (two_hours_ago, two_hours_ago))

    await local.publish(artifact("v2", 2.0))

    assert not stale.exists()
    assert fresh.exists()  # perhaps a training run writing right now
    assert listed(await local.versions()) == [("v2", True), ("v1", False)]


async def test_a_reader_keeps_its_mapped_version_while_newer_ones_are_published_and_it_is_pruned(local: LocalModelStore) -> None:
    await local.publish(artifact("v1", 1.0, seed=1))
    held = await local.load("v1")

    for number in range(2, 2 + KEEP):
        await local.publish(artifact(f"v{number}", float(number), seed=number))

    assert not (local.root / "versions" / "v1").exists()  # pruned...
    for name, array in arrays(1).items():
        assert_identical(held.arrays[name], array)  # ...but the reader's pages are still its own


async def test_latest_naming_a_missing_version_fails_to_load(local: LocalModelStore) -> None:
    local.root.mkdir()
    (local.root / "LATEST").write_text("ghost\n")

    assert await local.latest_version() == "ghost"
    with pytest.raises(ArtifactError, match=f"model ghost at {local.root} does not exist"):
        await local.load("ghost")


async def test_garbage_in_latest_is_an_artifact_error(local: LocalModelStore) -> None:
    local.root.mkdir()
    (local.root / "LATEST").write_text("../../etc\n")

    with pytest.raises(ArtifactError, match="LATEST .* is damaged"):
        await local.latest_version()


async def test_an_unreadable_root_is_an_artifact_error_everywhere(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.write_text("a file where the directory should be")  # permissions cannot be relied on as root
    store = LocalModelStore(root)

    with pytest.raises(ArtifactError, match="cannot read LATEST"):
        await store.latest_version()
    with pytest.raises(ArtifactError):
        await store.versions()
    with pytest.raises(ArtifactError, match="cannot read model v1"):
        await store.load("v1")
    with pytest.raises(ArtifactError, match="could not publish model v1"):
        await store.publish(artifact("v1", 1.0))
    with pytest.raises(ArtifactError):
        await store.use("v1")


async def test_a_version_directory_renamed_by_hand_is_refused(local: LocalModelStore) -> None:
    await local.publish(artifact("v1", 1.0))
    (local.root / "versions" / "v1").rename(local.root / "versions" / "v7")

    with pytest.raises(ArtifactError, match="v7 .*manifest.json names version 'v1'"):
        await local.load("v7")
    assert await local.versions() == []


async def test_republishing_over_a_damaged_copy_replaces_it(local: LocalModelStore) -> None:
    await local.publish(artifact("v1", 1.0))
    weights = local.root / "versions" / "v1" / "weights.npy"
    weights.write_bytes(weights.read_bytes()[:-4])

    await local.publish(artifact("v1", 1.0))

    assert_identical((await local.load("v1")).arrays["weights"], arrays()["weights"])
    assert tree(local.root / "versions") == {"v1", "v1/manifest.json", *(f"v1/{name}.npy" for name in arrays())}


async def test_concurrent_publishes_of_one_version_both_succeed(local: LocalModelStore) -> None:
    assert await asyncio.gather(local.publish(artifact("v1", 1.0)), local.publish(artifact("v1", 1.0))) == ["v1", "v1"]

    assert listed(await local.versions()) == [("v1", True)]
    assert sorted(path.name for path in (local.root / "versions").iterdir()) == ["v1"]


# --- the S3 store ----------------------------------------------------------------------------


@pytest.fixture
async def s3_client(moto_server: str) -> AsyncIterator[Any]:
    async with _session(MOTO_REGION).client("s3", endpoint_url=moto_server) as client:
        yield client


@pytest.fixture
async def s3_bucket(s3_client: Any) -> AsyncIterator[str]:
    """A new bucket per test on the moto server; emptied and deleted afterwards."""
    bucket = f"bookrec-models-{uuid.uuid4().hex[:12]}"
    await s3_client.create_bucket(Bucket=bucket)
    yield bucket
    keys = await object_keys(s3_client, bucket)
    if keys:
        await s3_client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys]})
    await s3_client.delete_bucket(Bucket=bucket)


@pytest.fixture
async def s3(moto_server: str, s3_bucket: str, tmp_path: Path) -> AsyncIterator[S3ModelStore]:
    async with open_s3(moto_server, s3_bucket, tmp_path / "cache") as store:
        yield store


def open_s3(endpoint: str, bucket: str, cache_dir: Path, config: AioConfig | None = None) -> Any:
    extra = {} if config is None else {"config": config}
    return open_model_store(f"s3://{bucket}/models", region=MOTO_REGION, endpoint_url=endpoint, cache_dir=cache_dir, keep=KEEP, **extra)


async def object_keys(client: Any, bucket: str) -> list[str]:
    response = await client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in response.get("Contents", []))


async def read_object(client: Any, bucket: str, key: str) -> bytes:
    response = await client.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return await body.read()


def record_requests(store: S3ModelStore) -> list[str]:
    """Every HTTP request the store's client sends from now on, as "METHOD path"."""
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(f"{request.method} {request.url.split('/', 3)[3].split('?')[0]}")

    store.client.meta.events.register("before-send.s3", record)
    return sent


@pytest.mark.moto_server
class TestS3ModelStore(ModelStoreContract):
    @pytest.fixture
    async def model_store(self, s3: S3ModelStore) -> S3ModelStore:
        return s3

    @pytest.fixture
    def damage(self, s3: S3ModelStore, s3_client: Any) -> Callable[[str, str, Change], Any]:
        async def damage(version: str, name: str, change: Change) -> None:
            key = s3.key("versions", version, name)
            data = change(await read_object(s3_client, s3.bucket, key))
            if data is None:
                await s3_client.delete_object(Bucket=s3.bucket, Key=key)
            else:
                await s3_client.put_object(Bucket=s3.bucket, Key=key, Body=data)

        return damage



@pytest.mark.moto_server
async def test_s3_layout_uploads_the_arrays_then_the_manifest_then_latest(s3: S3ModelStore, s3_client: Any) -> None:
    sent = record_requests(s3)

    await s3.publish(artifact("3f2a", 1.0))

    files = [f"models/versions/3f2a/{name}.npy" for name in arrays()]
    assert await object_keys(s3_client, s3.bucket) == sorted(["models/LATEST", "models/versions/3f2a/manifest.json", *files])
    assert await read_object(s3_client, s3.bucket, "models/LATEST") == b"3f2a\n"
    puts = [request.split(f"{s3.bucket}/", 1)[1] for request in sent if request.startswith("PUT")]
    assert set(puts[:-2]) == set(files)
    assert puts[-2:] == ["models/versions/3f2a/manifest.json", "models/LATEST"]


@pytest.mark.moto_server
async def test_s3_a_deleted_object_fails_the_load_and_leaves_nothing_in_the_cache(s3: S3ModelStore, s3_client: Any) -> None:
    await s3.publish(artifact("v1", 1.0))
    await s3_client.delete_object(Bucket=s3.bucket, Key="models/versions/v1/weights.npy")

    with pytest.raises(ArtifactError, match=f"model v1 at s3://{s3.bucket}/models is damaged: weights.npy is missing"):
        await s3.load("v1")

    assert list(s3.cache_dir.iterdir()) == []  # no half download, no partial dir


@pytest.mark.moto_server
async def test_s3_a_second_load_maps_the_local_cache_without_a_request(moto_server: str, s3: S3ModelStore, tmp_path: Path) -> None:
    await s3.publish(artifact("v1", 1.0, seed=1))
    sent = record_requests(s3)

    first = await s3.load("v1")
    downloads = len(sent)
    second = await s3.load("v1")

    assert downloads == 1 + len(arrays())  # the manifest, then each array once
    assert len(sent) == downloads  # the second load asked S3 nothing
    assert Path(second.arrays["weights"].filename).parent == s3.cache_dir / "v1"
    assert_identical(first.arrays["weights"], second.arrays["weights"])
    # Another worker process on the host, with its own client, maps the same copy.
    async with open_s3(moto_server, s3.bucket, s3.cache_dir) as worker:
        worker_sent = record_requests(worker)
        assert_identical((await worker.load("v1")).arrays["book_ids"], arrays(1)["book_ids"])
    assert worker_sent == []


@pytest.mark.moto_server
async def test_s3_a_damaged_cached_copy_is_downloaded_again(s3: S3ModelStore) -> None:
    await s3.publish(artifact("v1", 1.0, seed=1))
    await s3.load("v1")
    cached = s3.cache_dir / "v1" / "weights.npy"
    cached.write_bytes(cached.read_bytes()[:-1] + b"\x00")
    sent = record_requests(s3)

    loaded = await s3.load("v1")

    assert len(sent) == 1 + len(arrays())
    assert_identical(loaded.arrays["weights"], arrays(1)["weights"])
    assert sorted(path.name for path in s3.cache_dir.iterdir()) == ["v1"]


@pytest.mark.moto_server
async def test_s3_the_cache_keeps_only_the_most_recently_used_versions(s3: S3ModelStore) -> None:
    for number in range(1, KEEP + 3):
        await s3.use(await s3.publish(artifact(f"v{number}", float(number))))  # use() downloads it

    assert sorted(path.name for path in s3.cache_dir.iterdir()) == ["v3", "v4", "v5"]


@pytest.mark.moto_server
async def test_s3_use_checks_s3_itself_not_just_the_cache(s3: S3ModelStore, s3_client: Any) -> None:
    await s3.publish(artifact("v1", 1.0))
    await s3.load("v1")  # cached and verified
    await s3.publish(artifact("v2", 2.0))
    await s3_client.delete_object(Bucket=s3.bucket, Key="models/versions/v1/norms.npy")

    with pytest.raises(ArtifactError, match="v1 .*is damaged: norms.npy is missing"):
        await s3.use("v1")  # every other host would fail to download it

    assert await s3.latest_version() == "v2"


@pytest.mark.moto_server
async def test_s3_an_upload_killed_half_way_is_ignored_then_swept_once_stale(
    s3: S3ModelStore, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await s3.publish(artifact("v1", 1.0))
    await s3_client.put_object(Bucket=s3.bucket, Key="models/versions/v2/weights.npy", Body=b"no manifest yet")

    assert listed(await s3.versions()) == [("v1", True)]
    with pytest.raises(ArtifactError, match="model v2 .* does not exist"):
        await s3.load("v2")
    await s3.publish(artifact("v3", 3.0))
    assert "models/versions/v2/weights.npy" in await object_keys(s3_client, s3.bucket)  # might be uploading right now

    monkeypatch.setattr(model_store_module, "STALE_PARTIAL_SECONDS", -60.0)  # as if an hour had passed
    await s3.publish(artifact("v4", 4.0))

    assert not any(key.startswith("models/versions/v2/") for key in await object_keys(s3_client, s3.bucket))
    assert listed(await s3.versions()) == [("v4", True), ("v3", False), ("v1", False)]


@pytest.mark.moto_server
async def test_s3_a_missing_bucket_is_an_artifact_error(moto_server: str, tmp_path: Path) -> None:
    async with open_s3(moto_server, f"no-such-bucket-{uuid.uuid4().hex[:8]}", tmp_path) as store:
        with pytest.raises(ArtifactError, match="reading LATEST at s3://no-such-bucket-.* failed: NoSuchBucket"):
            await store.latest_version()
        with pytest.raises(ArtifactError, match="NoSuchBucket"):
            await store.versions()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on exit: nothing listens there


async def test_s3_unreachable_is_a_quick_artifact_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = AioConfig(connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 1, "mode": "standard"})
    started = time.perf_counter()

    async with open_s3(f"http://127.0.0.1:{closed_port()}", "models", tmp_path / "cache", config) as store:
        with pytest.raises(ArtifactError, match="reading LATEST at s3://models/models failed: Could not connect"):
            await store.latest_version()
        with pytest.raises(ArtifactError, match="downloading model v1 at s3://models/models failed"):
            await store.load("v1")
        with pytest.raises(ArtifactError, match="publishing model v1"):
            await store.publish(artifact("v1", 1.0))

    assert time.perf_counter() - started < 5
    assert not any(path.name.startswith(".partial-") for path in (tmp_path / "cache").glob("*"))


# --- the factory -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("./data/model", Path("data/model")),
        ("/var/lib/bookrec/model", Path("/var/lib/bookrec/model")),
        ("file:///var/lib/book%20rec/model", Path("/var/lib/book rec/model")),
        ("file://localhost/srv/model", Path("/srv/model")),
        ("s3://my-bucket/models/prod/", ("my-bucket", "models/prod")),
        ("s3://my-bucket", ("my-bucket", "")),
    ],
)
def test_model_uris_name_a_directory_or_a_bucket_and_prefix(uri: str, expected: object) -> None:
    assert parse_model_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["", "ftp://x/y", "s3://", "s3:///prefix", "s3:bucket/x", "s3://Bad_Bucket/x", "file://host/x", "https://s3/x"]
)
def test_other_model_uris_are_value_errors(uri: str) -> None:
    with pytest.raises(ValueError, match="model store URI"):
        parse_model_uri(uri)


async def test_open_model_store_yields_the_store_the_uri_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    common: dict[str, Any] = {"region": MOTO_REGION, "endpoint_url": None, "cache_dir": tmp_path / "cache", "keep": 2}

    async with open_model_store(str(tmp_path / "model"), **common) as local:
        assert isinstance(local, LocalModelStore) and local.root == tmp_path / "model" and local.keep == 2
    async with open_model_store(f"file://{tmp_path}/model", **common) as local:
        assert isinstance(local, LocalModelStore) and local.root == tmp_path / "model"
    async with open_model_store("s3://my-bucket/models/", **common) as remote:
        assert isinstance(remote, S3ModelStore)
        assert (remote.bucket, remote.prefix, remote.cache_dir, remote.keep) == ("my-bucket", "models", tmp_path / "cache", 2)
        assert remote.where == "s3://my-bucket/models"
