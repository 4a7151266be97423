"""User-user collaborative filtering over a sparse users x books snapshot (work in progress)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecommenderParams:
    neighbours: int = 50
    min_neighbours: int = 3
    shrinkage: float = 10.0
    mean_centre: bool = False
    max_recommendations: int = 50
