"""BASELINE ONLY: the seed's design, a FastAPI endpoint returning a user's cached book ids.

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn bench.seed_fastapi:app --loop uvloop --http httptools --no-access-log

One Redis GET of `reco:{user_id}` per request and the top 10 book ids of the cached
list as JSON: no titles, no authors, no scores. Written as that design is usually
written (FastAPI's defaults, redis-py's asyncio client with hiredis, the standard json
module), so the HTTP benchmark's first case compares against the design this service
replaces. It reads bookrec's envelope, the only thing in the cache, and keeps its ids.
A user without a cached list is a 404: the seed computed misses in 500-800 ms, which
the benchmark's hit cases never ask for.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI, HTTPException
from redis.asyncio import Redis

TOP = 10

def create_app(redis_url: str) -> FastAPI:
    app = FastAPI()
    redis = Redis.from_url(redis_url)

    @app.get("/recommendations/{user_id}")
    async def recommendations(user_id: str) -> dict[str, object]:
        cached = await redis.get(f"reco:{user_id}")
        if cached is None:
            raise HTTPException(status_code=404, detail="no cached recommendations")
        envelope = json.loads(cached)
        return {"user_id": user_id, "book_ids": envelope["book_ids"][:TOP]}

    return app


app = create_app(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
