"""/metrics: Prometheus text that the official parser reads, counters that follow a scripted sequence, bounded labels."""

from __future__ import annotations

import asyncio
import re

from prometheus_client.parser import text_string_to_metric_families

from graphql_api.observability.labels import MAX_EXTRA_OPERATIONS
from graphql_api.observability.runtime import manifest_operation_names
from tests.api.conftest import TASTES, Api
from tests.observability.conftest import RATE, RECOMMENDATIONS, scrape, value


async def test_counters_follow_miss_hit_rate_miss(api: Api) -> None:
    alice = {"id": "alice"}
    first = await api.gql(RECOMMENDATIONS, alice)  # miss: computed and cached
    assert "errors" not in first
    await api.gql(RECOMMENDATIONS, alice)  # hit
    rated = await api.gql(RATE, {"u": "alice", "b": "100"}, token=api.token("alice"))  # drops alice's list
    assert "errors" not in rated
    await api.gql(RECOMMENDATIONS, alice)  # miss again

    _, samples = await scrape(api)
    assert value(samples, "bookrec_cache_hits_total") == 1
    assert value(samples, "bookrec_cache_misses_total") == 2
    assert value(samples, "bookrec_cache_invalidations_total") == 1
    assert value(samples, "bookrec_cache_fills_total") == 2
    assert value(samples, "bookrec_cache_fills_refused_total") == 0
    assert value(samples, "bookrec_cache_errors_total") == 0
    assert value(samples, "bookrec_cache_lease_waits_total") == 0
    assert value(samples, "bookrec_graphql_requests_total", operation="Recs", outcome="ok") == 3
    assert value(samples, "bookrec_graphql_requests_total", operation="Rate", outcome="ok") == 1
    assert value(samples, "bookrec_graphql_request_duration_seconds_count", operation="Recs") == 3
    # Two misses, each one recommender call for one user.
    assert value(samples, "bookrec_recommender_batch_users_count") == 2
    assert value(samples, "bookrec_recommender_batch_users_sum") == 2
    assert value(samples, "bookrec_recommender_batch_duration_seconds_count") == 2
    # One RecommendationLoader batch per query; one BookLoader batch per query and for the rating's book.
    assert value(samples, "bookrec_dataloader_batch_keys_count", loader="recommendations") == 3
    assert value(samples, "bookrec_dataloader_batch_keys_count", loader="books") == 4
    assert value(samples, "bookrec_model_size", dimension="users") == len(TASTES)
    assert value(samples, "bookrec_model_size", dimension="ratings") == sum(map(len, TASTES.values()))
    assert value(samples, "bookrec_model_size", dimension="weights") > 0
    assert value(samples, "bookrec_model_fallback") == 0
    assert value(samples, "bookrec_model_age_seconds") >= 0


async def test_scraping_twice_does_not_count_twice(api: Api) -> None:
    await api.gql(RECOMMENDATIONS, {"id": "bob"})
    await api.gql(RECOMMENDATIONS, {"id": "bob"})
    _, first = await scrape(api)
    _, second = await scrape(api)
    for name in ("bookrec_cache_hits_total", "bookrec_cache_misses_total", "bookrec_cache_fills_total"):
        assert value(first, name) == value(second, name) == 1


async def test_an_error_is_counted_under_its_code(api: Api) -> None:
    refused = await api.gql(RATE, {"u": "alice", "b": "1"})  # no token
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    invalid = await api.client.post("/graphql", json={"query": "query Broken { nope }"})
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    await api.client.post("/graphql", json={"query": "{ popularBooks(limit: 1) { id } }"})

    _, samples = await scrape(api)
    assert value(samples, "bookrec_graphql_requests_total", operation="Rate", outcome="UNAUTHENTICATED") == 1
    assert value(samples, "bookrec_graphql_requests_total", operation="Broken", outcome="GRAPHQL_VALIDATION_FAILED") == 1
    assert value(samples, "bookrec_graphql_requests_total", operation="anonymous", outcome="ok") == 1


async def test_refresh_job_progress_is_exported(api: Api) -> None:
    started = await api.gql(
        "mutation { refreshRecommendations(userIds: [\"alice\", \"bob\", \"carol\"]) { id } }",
        token=api.token("root", admin=True),
    )
    job_id = started["data"]["refreshRecommendations"]["id"]
    for _ in range(500):
        await asyncio.sleep(0.01)
        job = await api.gql("query($id: ID!) { refreshJob(id: $id) { status } }", {"id": job_id})
        if job["data"]["refreshJob"]["status"] == "SUCCEEDED":
            break
    else:
        raise AssertionError("the refresh job did not finish")
    _, samples = await scrape(api)
    assert value(samples, "bookrec_refresh_job_users") == 3
    assert value(samples, "bookrec_refresh_job_processed_users") == 3
    assert value(samples, "bookrec_refresh_job_running") == 0
    assert value(samples, "bookrec_recommender_batch_users_sum") == 3


async def test_every_family_parses_and_follows_prometheus_naming(api: Api) -> None:
    await api.gql(RECOMMENDATIONS, {"id": "alice"})
    text, _ = await scrape(api)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    ours = {name: family for name, family in families.items() if name.startswith("bookrec_")}
    assert len(ours) >= 25
    for name, family in ours.items():
        assert re.fullmatch(r"bookrec_[a-z0-9_]+", name)
        assert family.documentation, name
        if family.type == "counter":
            assert any(sample.name == f"{name}_total" for sample in family.samples) or not family.samples, name
        if family.type == "histogram":
            assert name.endswith(("_seconds", "_users", "_keys")), name


async def test_labels_stay_bounded_whatever_clients_send(api: Api) -> None:
    user_ids = [f"user{index:03d}x9q" for index in range(200)]
    for index, user_id in enumerate(user_ids):
        query = f"query Op{index}($id: ID!) {{ user(id: $id) {{ recommendations(limit: 1) {{ score }} }} }}"
        body = await api.gql(query, {"id": user_id})
        assert "errors" not in body
    # Names that are no GraphQL name at all, sent as operationName.
    for odd in ("x" * 500, "drop table;", "ünïcode"):
        await api.client.post("/graphql", json={"query": "{ popularBooks(limit: 1) { id } }", "operationName": odd})

    text, samples = await scrape(api)
    assert not any(user_id in text for user_id in user_ids)
    operations = {dict(labels)["operation"] for name, labels in samples if name == "bookrec_graphql_requests_total"}
    reserved = {"anonymous", "batch", "invalid", "other"}
    assert len(operations) <= len(manifest_operation_names()) + MAX_EXTRA_OPERATIONS + len(reserved)
    assert value(samples, "bookrec_graphql_requests_total", operation="other", outcome="ok") == 200 - MAX_EXTRA_OPERATIONS
    # Not a GraphQL name (nor an operation of the document, hence a 400): labelled, not echoed.
    assert value(samples, "bookrec_graphql_requests_total", operation="invalid", outcome="HTTP_400") == 3
    assert "drop table" not in text and "x" * 65 not in text
    for name, labels in samples:
        for label, label_value in labels:
            assert len(label_value) <= 64, (name, label, label_value)
