"""The deployment side of observability: multiprocess metrics in the image, /metrics kept off the internet, alarms."""

from __future__ import annotations

from tests.infra.conftest import REPO_ROOT, TERRAFORM_ROOT, TerraformModule, block
from tests.infra.test_dockerfile import environment, parse_dockerfile


def test_the_image_runs_workers_with_a_multiprocess_metrics_directory_under_tmp() -> None:
    _, stages = parse_dockerfile((REPO_ROOT / "Dockerfile").read_text(encoding="utf-8"))
    directory = environment(stages[-1])["PROMETHEUS_MULTIPROC_DIR"]
    assert directory.startswith("/tmp/"), "the only writable path, empty at each container start"


def test_the_load_balancer_answers_metrics_itself() -> None:
    ecs = TerraformModule.load(TERRAFORM_ROOT / "modules" / "ecs")
    rule = ecs.resource("aws_lb_listener_rule", "hide_metrics")
    action = block(rule, "action")
    assert action["type"] == "fixed-response" and block(action, "fixed_response")["status_code"] == "404"
    assert "/metrics" in block(block(rule, "condition"), "path_pattern")["values"]


def test_the_alarms_operators_need_are_defined() -> None:
    cache = TerraformModule.load(TERRAFORM_ROOT / "modules" / "cache")
    ecs = TerraformModule.load(TERRAFORM_ROOT / "modules" / "ecs")
    node_metrics = {alarm["metric"] for alarm in cache.locals["node_alarms"].values()}
    assert node_metrics == {"EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "Evictions"}
    alarms = ecs.of_type("aws_cloudwatch_metric_alarm")
    error_rate_inputs = {query["id"]: query for query in alarms["error_rate"]["metric_query"]}
    assert "HTTPCode_Target_5XX_Count" in str(alarms["error_rate"]) and "requests" in error_rate_inputs["error_rate"]["expression"]
    assert alarms["p99_latency"]["extended_statistic"] == "p99"
    assert alarms["p99_latency"]["metric_name"] == "TargetResponseTime"
