"""The ModelRepository contract: what every model store must do, wherever it keeps the files.

An adapter's test module subclasses `ModelStoreContract` (as `Test...`) and provides:

- `model_store`: an EMPTY store with keep=3;
- `damage`: an async function `damage(version, file_name, change)` that rewrites one stored
  file behind the store's back: `change(old_bytes)` returns the new bytes, or None to delete it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from domain.models import ArtifactError, ModelArtifact
from domain.ports import ModelRepository

Damage = Callable[[str, str, Callable[[bytes], bytes | None]], Awaitable[None]]
KEEP = 3


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Tiny arrays of every dtype a model stores, including empty ones and a 2-D one."""
    rng = np.random.default_rng(seed)
    return {
        "book_ids": np.arange(seed, seed + 7, dtype=np.int64),
        "offsets": np.array([0, 3, 3, 7], dtype=np.int32),
        "weights": rng.random((3, 4), dtype=np.float32),
        "norms": rng.random(5),  # float64
        "nothing": np.zeros(0, dtype=np.float32),
        "no_rows": np.zeros((0, 4), dtype=np.int32),
    }


def artifact(version: str, created_at: float, seed: int = 0) -> ModelArtifact:
    manifest = {"version": version, "created_at": created_at, "trained_on": "sqlite:test", "params": {"neighbours": 20}}
    return ModelArtifact(manifest=manifest, arrays=arrays(seed))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def assert_identical(loaded: np.ndarray, given: np.ndarray) -> None:
    assert loaded.dtype == given.dtype
    assert loaded.shape == given.shape
    assert loaded.tobytes() == given.tobytes()


def listed(versions: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(str(manifest["version"]), bool(manifest["latest"])) for manifest in versions]


def truncate(data: bytes) -> bytes:
    return data[:-3]


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


class ModelStoreContract:
    async def test_an_empty_store_has_no_latest_and_no_versions(self, model_store: ModelRepository) -> None:
        assert await model_store.latest_version() is None
        assert await model_store.versions() == []

    async def test_publish_then_load_round_trips_the_arrays_byte_for_byte(self, model_store: ModelRepository) -> None:
        given = artifact("v1", 1_700_000_000.0)

        assert await model_store.publish(given) == "v1"
        assert await model_store.latest_version() == "v1"
        loaded = await model_store.load("v1")

        assert loaded.version == "v1"
        assert set(loaded.arrays) == set(given.arrays)
        for name, array in given.arrays.items():
            assert_identical(loaded.arrays[name], array)
        assert {key: loaded.manifest[key] for key in given.manifest} == dict(given.manifest)

    async def test_the_manifest_gains_a_files_table_computed_by_the_store(self, model_store: ModelRepository) -> None:
        given = artifact("v1", 1.0)
        await model_store.publish(given)

        files = (await model_store.load("v1")).manifest["files"]

        for name, array in given.arrays.items():
            data = npy_bytes(array)
            digest = hashlib.sha256(data).hexdigest()
            assert files[name] == {"bytes": len(data), "sha256": digest, "dtype": str(array.dtype), "shape": list(array.shape)}

    async def test_loaded_arrays_are_read_only_memory_maps(self, model_store: ModelRepository) -> None:
        await model_store.publish(artifact("v1", 1.0))

        loaded = await model_store.load("v1")

        for array in loaded.arrays.values():
            assert isinstance(array, np.memmap)  # several workers on a host share the pages
            assert not array.flags.writeable

    async def test_an_iso_created_at_is_accepted(self, model_store: ModelRepository) -> None:
        older = ModelArtifact({"version": "older", "created_at": "2024-05-01T12:00:00+00:00"}, arrays())
        newer = ModelArtifact({"version": "newer", "created_at": "2024-05-02T12:00:00Z"}, arrays())
        await model_store.publish(newer)
        await model_store.publish(older)

        assert listed(await model_store.versions()) == [("newer", False), ("older", True)]

    async def test_republishing_a_version_is_harmless(self, model_store: ModelRepository) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await model_store.publish(artifact("v2", 2.0, seed=2))

        assert await model_store.publish(artifact("v1", 1.0)) == "v1"

        assert await model_store.latest_version() == "v1"
        assert listed(await model_store.versions()) == [("v2", False), ("v1", True)]
        for name, array in arrays().items():
            assert_identical((await model_store.load("v1")).arrays[name], array)

    async def test_keep_prunes_the_oldest_versions(self, model_store: ModelRepository) -> None:
        for number in range(1, KEEP + 3):
            await model_store.publish(artifact(f"v{number}", float(number), seed=number))

        assert listed(await model_store.versions()) == [("v5", True), ("v4", False), ("v3", False)]
        for pruned in ("v1", "v2"):
            with pytest.raises(ArtifactError, match=pruned):
                await model_store.load(pruned)

    async def test_pruning_never_removes_the_latest_even_when_it_is_the_oldest(self, model_store: ModelRepository) -> None:
        for number in range(2, 2 + KEEP):
            await model_store.publish(artifact(f"v{number}", float(number), seed=number))

        await model_store.publish(artifact("v0", 0.0))  # e.g. a retrained old model: LATEST, but the oldest

        assert listed(await model_store.versions()) == [("v4", False), ("v3", False), ("v2", False), ("v0", True)]
        await model_store.load("v0")

    async def test_versions_are_newest_first_with_the_latest_flagged(self, model_store: ModelRepository) -> None:
        await model_store.publish(artifact("b", 2.0))
        await model_store.publish(artifact("c", 3.0))
        await model_store.publish(artifact("a", 1.0))

        versions = await model_store.versions()

        assert listed(versions) == [("c", False), ("b", False), ("a", True)]
        assert versions[0]["trained_on"] == "sqlite:test"
        assert set(versions[0]["files"]) == set(arrays())  # type: ignore[arg-type]

    async def test_use_rolls_latest_back(self, model_store: ModelRepository) -> None:
        await model_store.publish(artifact("v1", 1.0, seed=1))
        await model_store.publish(artifact("v2", 2.0, seed=2))

        await model_store.use("v1")

        assert await model_store.latest_version() == "v1"
        assert listed(await model_store.versions()) == [("v2", False), ("v1", True)]
        assert_identical((await model_store.load("v1")).arrays["book_ids"], arrays(1)["book_ids"])

    async def test_use_of_an_unknown_version_raises_and_leaves_latest(self, model_store: ModelRepository) -> None:
        await model_store.publish(artifact("v1", 1.0))

        with pytest.raises(ArtifactError, match="ghost"):
            await model_store.use("ghost")
        with pytest.raises(ArtifactError):
            await model_store.use("../v1")

        assert await model_store.latest_version() == "v1"

    async def test_use_of_a_damaged_version_raises_and_leaves_latest(self, model_store: ModelRepository, damage: Damage) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await model_store.publish(artifact("v2", 2.0))
        await damage("v1", "weights.npy", truncate)

        with pytest.raises(ArtifactError, match="v1"):
            await model_store.use("v1")

        assert await model_store.latest_version() == "v2"

    async def test_loading_a_truncated_file_raises(self, model_store: ModelRepository, damage: Damage) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await damage("v1", "weights.npy", truncate)

        with pytest.raises(ArtifactError) as raised:
            await model_store.load("v1")

        message = str(raised.value)
        assert "\n" not in message
        assert "v1" in message and "weights.npy" in message and "bytes" in message

    async def test_loading_an_altered_file_raises_naming_the_hashes(self, model_store: ModelRepository, damage: Damage) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await damage("v1", "norms.npy", flip_last_byte)  # same size: only the hash can tell

        with pytest.raises(ArtifactError, match=r"v1 .*norms\.npy has sha256 [0-9a-f]{64} but the manifest says [0-9a-f]{64}"):
            await model_store.load("v1")

    async def test_loading_a_version_with_a_missing_file_raises(self, model_store: ModelRepository, damage: Damage) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await damage("v1", "offsets.npy", lambda _: None)

        with pytest.raises(ArtifactError, match=r"v1 .*offsets\.npy is missing"):
            await model_store.load("v1")

    async def test_a_version_without_its_manifest_is_neither_listed_nor_loaded(self, model_store: ModelRepository, damage: Damage) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await model_store.publish(artifact("v2", 2.0))
        await damage("v1", "manifest.json", lambda _: None)

        assert listed(await model_store.versions()) == [("v2", True)]
        with pytest.raises(ArtifactError, match="v1"):
            await model_store.load("v1")

    async def test_a_version_with_an_invalid_manifest_is_neither_listed_nor_loaded(
        self, model_store: ModelRepository, damage: Damage
    ) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await model_store.publish(artifact("v2", 2.0))
        await damage("v1", "manifest.json", lambda data: data[: len(data) // 2])

        assert listed(await model_store.versions()) == [("v2", True)]
        with pytest.raises(ArtifactError, match="v1 .*manifest.json is not valid JSON"):
            await model_store.load("v1")

    async def test_a_manifest_naming_another_version_is_refused(self, model_store: ModelRepository, damage: Damage) -> None:
        await model_store.publish(artifact("v1", 1.0))
        await damage("v1", "manifest.json", lambda data: data.replace(b'"version": "v1"', b'"version": "v9"'))

        with pytest.raises(ArtifactError, match="names version 'v9'"):
            await model_store.load("v1")

    async def test_loading_an_unknown_or_unsafe_version_raises(self, model_store: ModelRepository) -> None:
        with pytest.raises(ArtifactError, match="ghost"):
            await model_store.load("ghost")
        for unsafe in ("../ghost", "", ".partial-x", "a/b"):
            with pytest.raises(ArtifactError, match="not a model version name"):
                await model_store.load(unsafe)

    async def test_publish_refuses_an_artifact_it_could_not_store_safely(self, model_store: ModelRepository) -> None:
        bad = [
            ModelArtifact({"version": "../up", "created_at": 1.0}, arrays()),
            ModelArtifact({"created_at": 1.0}, arrays()),
            ModelArtifact({"version": "v1"}, arrays()),  # no created_at: pruning could not order it
            ModelArtifact({"version": "v1", "created_at": 1.0}, {"../x": np.zeros(1)}),
            ModelArtifact({"version": "v1", "created_at": 1.0}, {"x": np.array([object()])}),
        ]
        for given in bad:
            with pytest.raises(ValueError):
                await model_store.publish(given)

        assert await model_store.latest_version() is None
        assert await model_store.versions() == []
