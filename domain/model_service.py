"""Publishing and serving item models: train and publish, load the latest, swap when a newer one appears.

Serving processes never read every rating: they load the artifact `bookrec train` published,
check that it belongs to the stores they serve, and poll for a newer one. A model that cannot
be used (missing, damaged, trained on another store) is refused with one log line and the
current model stays; before any model exists the catalogue's popularity ranking is served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from domain.item_model import ItemModel, ItemModelParams, train
from domain.models import ArtifactError, StoreUnavailable
from domain.ports import BookCatalog, ModelRepository, RatingsRepository
from domain.service import ModelHolder, RunBlocking

logger = logging.getLogger("bookrec.model")

POPULAR_FALLBACK_BOOKS = 1000  # books ranked by the fallback: far more than any list shows
CATALOGUE_CHECK_BATCH = 100  # book ids per catalogue read when checking a model's books


class EmptyStore(ValueError):
    """There is no rating to train on."""


class ModelService:
    """Trains, publishes, loads and swaps the item model; every I/O goes through the ports."""

    def __init__(self, repository: ModelRepository, ratings: RatingsRepository, catalog: BookCatalog, *,
                 run_blocking: RunBlocking, where: str) -> None:
        self._repository = repository
        self._ratings = ratings
        self._catalog = catalog
        self._run_blocking = run_blocking
        self.where = where  # the repository's URI, for log lines
        self.problem: str | None = None  # why the served model is not a trained one (readiness reports it)
        self._refused: str | None = None
        self._last_logged: str | None = None

    async def train_and_publish(self, params: ItemModelParams,
                                measured: Callable[[], Mapping[str, Any]] = dict) -> ItemModel:
        """Read every rating, train off the event loop, publish; EmptyStore when there is nothing to train on.

        `measured()` is called once training is done; what it returns (the process's peak memory,
        say) goes into the manifest.
        """
        columns = await self._ratings.scan_columns()
        if not len(columns):
            raise EmptyStore("the ratings store holds no rating to train on")
        model = await self._run_blocking(train, columns, params)
        model = model.with_manifest({"source": await self._ratings.identity(), **measured()})
        manifest = model.manifest
        await self._repository.publish(model.to_artifact())
        logger.info("model %s published to %s: %d books, %d weights, trained on %d ratings in %.1f s",
                    model.version, self.where, model.n_books, model.weights.nnz, manifest["n_ratings"], manifest["training_seconds"])
        return model

    async def load_latest(self) -> ItemModel | None:
        """The latest published model, checked against these stores; None when none is published.

        Raises ArtifactError (one line) when the latest one cannot be served here.
        """
        version = await self._repository.latest_version()
        if version is None:
            return None
        return await self.load(version)

    async def load(self, version: str) -> ItemModel:
        artifact = await self._repository.load(version)
        model = await self._run_blocking(ItemModel.from_artifact, artifact)
        source, ours = model.manifest.get("source"), await self._ratings.identity()
        if source != ours:
            raise ArtifactError(f"model {version} at {self.where} was trained on {source!r}, not on this store ({ours!r})")
        book_ids = model.book_ids.tolist()
        missing = 0
        for start in range(0, len(book_ids), CATALOGUE_CHECK_BATCH):
            batch = book_ids[start : start + CATALOGUE_CHECK_BATCH]
            missing += len(batch) - len(await self._catalog.get_many(batch))
        if missing:
            raise ArtifactError(f"model {version} at {self.where} recommends {missing} books the catalogue does not hold")
        return model

    async def popular_fallback(self) -> ItemModel:
        return ItemModel.popular_only(await self._catalog.popular_book_ids(POPULAR_FALLBACK_BOOKS))

    async def refresh(self, holder: ModelHolder) -> bool:
        """Swap in the latest model when it is newer than the one served; True when it swapped.

        Never raises for a bad artifact or an unreachable repository: the current model stays, and
        the reason is logged once (not once per poll). A refused version is not tried again.
        """
        try:
            version = await self._repository.latest_version()
            if version is None or version in (holder.current.version, self._refused):
                return False
            started = time.perf_counter()
            try:
                model = await self.load(version)
            except ArtifactError:
                self._refused = version
                raise
        except (ArtifactError, StoreUnavailable) as error:  # a store failing the check: tried again next poll
            self._log_once(f"model refresh: {error}; keeping model {holder.current.version}")
            return False
        holder.swap(model)
        self.problem = self._last_logged = None
        logger.info("model %s from %s now served (loaded in %.2f s)", model.version, self.where, time.perf_counter() - started)
        return True

    def _log_once(self, line: str) -> None:
        if line != self._last_logged:
            logger.error(line)
            self._last_logged = line
