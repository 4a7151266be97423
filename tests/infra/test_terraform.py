"""Security and wiring properties of infra/terraform, read from the HCL itself.

`terraform validate` needs provider downloads, which this machine cannot make;
these checks pin down what the issue asks for instead: Redis reachable only
from the service, encryption everywhere, PITR, least-privilege IAM, and an ECS
task configured with settings the service actually reads.
"""

from __future__ import annotations

import re

import pytest

from tests.infra.conftest import TERRAFORM_ROOT, TerraformModule, block, load_hcl, parse_bookrec, unwrap

MODULES = ("modules/network", "modules/cache", "modules/dynamodb", "modules/ecs", "environments/dev")


@pytest.fixture(scope="module")
def cache(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["modules/cache"]


@pytest.fixture(scope="module")
def ecs(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["modules/ecs"]


@pytest.fixture(scope="module")
def dev(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["environments/dev"]


def test_every_module_of_the_layout_exists(terraform: dict[str, TerraformModule]) -> None:
    assert set(MODULES) <= set(terraform)


def test_every_variable_has_a_type_and_a_description(terraform: dict[str, TerraformModule]) -> None:
    missing = [
        f"{path}: var.{name}"
        for path, module in terraform.items()
        for name, body in module.variables.items()
        if not body.get("type") or not str(body.get("description", "")).strip()
    ]
    assert missing == []


def test_every_module_argument_is_a_declared_variable(terraform: dict[str, TerraformModule]) -> None:
    for path, module in terraform.items():
        for call, arguments in module.modules.items():
            target = terraform[str((module.path / arguments["source"]).resolve().relative_to(TERRAFORM_ROOT))]
            passed = {name for name in arguments if name != "source"}
            assert passed <= set(target.variables), f"{path}: module.{call} passes unknown {passed - set(target.variables)}"
            required = {name for name, body in target.variables.items() if "default" not in body}
            assert required <= passed, f"{path}: module.{call} misses {required - passed}"


def test_dev_tfvars_names_the_project_environment_and_node_type(dev: TerraformModule) -> None:
    tfvars = load_hcl(dev.path / "terraform.tfvars")
    values = {name: value for name, value in tfvars.items() if not name.startswith("__")}
    assert values == {"project_name": "book-recommendation", "environment": "dev", "node_type": "cache.t3.micro"}
    assert set(values) <= set(dev.variables)


def test_no_account_ids_or_secrets_are_written_down() -> None:
    sources = [path for path in TERRAFORM_ROOT.rglob("*") if path.suffix in {".tf", ".tfvars"}]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r"(?<![\d.])\d{12}(?![\d.])", text), f"{path}: looks like a hard-coded account id"
        assert not re.search(r"arn:aws[\w-]*:[^:\s\"]*:[^:\s\"]*:\d", text), f"{path}: literal ARN with an account"
        for attribute in ("auth_token", "secret_string", "password"):
            literal = re.search(rf'^\s*{attribute}\s*=\s*"', text, flags=re.M)
            assert literal is None, f"{path}: {attribute} is a literal string"


# --- Redis


def test_redis_security_group_admits_only_the_redis_port_from_the_service_group(
    terraform: dict[str, TerraformModule], cache: TerraformModule, ecs: TerraformModule, dev: TerraformModule
) -> None:
    redis_group = cache.resource("aws_security_group", "redis")
    assert "ingress" not in redis_group and "egress" not in redis_group, "rules must be separate resources"

    rules_on_redis_group = [
        (path, kind, name, body)
        for path, module in terraform.items()
        for (kind, name), body in module.resources.items()
        if kind in {"aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule", "aws_security_group_rule"}
        and unwrap(body.get("security_group_id")) == "aws_security_group.redis.id"
    ]
    assert len(rules_on_redis_group) == 1, rules_on_redis_group
    path, kind, _, rule = rules_on_redis_group[0]
    assert (path, kind) == ("modules/cache", "aws_vpc_security_group_ingress_rule")
    assert cache.locals["port"] == 6379
    assert unwrap(rule["from_port"]) == unwrap(rule["to_port"]) == "local.port"
    assert rule["ip_protocol"] == "tcp"
    assert unwrap(rule["referenced_security_group_id"]) == "var.client_security_group_id"
    assert not {"cidr_ipv4", "cidr_ipv6", "prefix_list_id"} & set(rule)

    # ...and that client group is the very group the ECS service runs in.
    assert unwrap(dev.modules["cache"]["client_security_group_id"]) == "module.network.service_security_group_id"
    assert unwrap(dev.modules["ecs"]["service_security_group_id"]) == "module.network.service_security_group_id"
    network = block(ecs.resource("aws_ecs_service", "api"), "network_configuration")
    assert [unwrap(group) for group in network["security_groups"]] == ["var.service_security_group_id"]


def test_redis_is_encrypted_in_transit_and_at_rest_with_an_auth_token(cache: TerraformModule, dev: TerraformModule) -> None:
    group = cache.resource("aws_elasticache_replication_group", "main")
    assert group["engine"] == "redis" and str(group["engine_version"]).startswith("${var.")
    assert str(cache.variables["engine_version"]["default"]).startswith("7")
    assert group["transit_encryption_enabled"] is True
    assert group["transit_encryption_mode"] == "required"
    assert group["at_rest_encryption_enabled"] is True
    assert unwrap(group["kms_key_id"]) == "var.kms_key_arn"
    assert unwrap(dev.modules["cache"]["kms_key_arn"]) == "aws_kms_key.main.arn"
    assert unwrap(group["auth_token"]) == "random_password.auth_token.result"
    assert unwrap(group["subnet_group_name"]) == "aws_elasticache_subnet_group.main.name"
    assert unwrap(dev.modules["cache"]["subnet_ids"]) == "module.network.private_subnet_ids"


def test_redis_failover_and_multi_az_are_variables_and_snapshots_are_kept(cache: TerraformModule) -> None:
    group = cache.resource("aws_elasticache_replication_group", "main")
    assert unwrap(group["automatic_failover_enabled"]) == "var.automatic_failover_enabled"
    assert unwrap(group["multi_az_enabled"]) == "var.multi_az_enabled"
    assert unwrap(group["snapshot_retention_limit"]) == "var.snapshot_retention_days"
    assert cache.variables["snapshot_retention_days"]["default"] > 0


def test_redis_auth_token_lives_in_secrets_manager_and_reaches_the_tasks_as_a_secret(
    cache: TerraformModule, ecs: TerraformModule, dev: TerraformModule
) -> None:
    version = cache.resource("aws_secretsmanager_secret_version", "auth_token")
    assert unwrap(version["secret_string"]) == "random_password.auth_token.result"
    assert unwrap(cache.resource("aws_secretsmanager_secret", "auth_token")["kms_key_id"]) == "var.kms_key_arn"
    assert unwrap(cache.outputs["auth_token_secret_arn"]["value"]) == "aws_secretsmanager_secret.auth_token.arn"
    assert unwrap(dev.modules["ecs"]["redis_auth_secret_arn"]) == "module.cache.auth_token_secret_arn"
    assert unwrap(ecs.locals["container_secrets"]["REDIS_PASSWORD"]) == "var.redis_auth_secret_arn"


# --- DynamoDB


def test_table_has_the_single_table_keys_on_demand_billing_pitr_and_kms(terraform: dict[str, TerraformModule]) -> None:
    table = terraform["modules/dynamodb"].resource("aws_dynamodb_table", "main")
    assert (table["hash_key"], table["range_key"]) == ("pk", "sk")
    assert {(attribute["name"], attribute["type"]) for attribute in table["attribute"]} == {("pk", "S"), ("sk", "S")}
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert block(table, "point_in_time_recovery")["enabled"] is True
    encryption = block(table, "server_side_encryption")
    assert encryption["enabled"] is True and unwrap(encryption["kms_key_arn"]) == "var.kms_key_arn"


def test_kms_key_rotates_and_its_policy_names_no_wildcard_principal(dev: TerraformModule) -> None:
    key = dev.resource("aws_kms_key", "main")
    assert key["enable_key_rotation"] is True
    policy = str(key["policy"])
    assert "Principal" in policy and not re.search(r'Principal\s*=\s*"\*"|AWS\s*=\s*"\*"', policy)


# --- IAM


def _allow_statements(terraform: dict[str, TerraformModule]) -> list[tuple[str, str, dict]]:
    return [
        (path, name, statement)
        for path, module in terraform.items()
        for (kind, name), body in module.data.items()
        if kind == "aws_iam_policy_document"
        for statement in body.get("statement", [])
        if statement.get("effect", "Allow") == "Allow"
    ]


# AWS offers no resource-level permission for these actions: "*" is the only resource they accept.
UNSCOPABLE_ACTIONS = frozenset({"ecr:GetAuthorizationToken"})


def test_iam_allows_no_wildcard_actions_and_names_every_resource(terraform: dict[str, TerraformModule]) -> None:
    statements = _allow_statements(terraform)
    assert len(statements) >= 10
    for path, name, statement in statements:
        where = f"{path}: data.aws_iam_policy_document.{name}"
        assert "not_actions" not in statement and "not_resources" not in statement, where
        actions = statement["actions"]
        assert actions and not any("*" in action for action in actions), f"{where}: wildcard action in {actions}"
        if "principals" in statement and statement["actions"] == ["sts:AssumeRole"]:
            continue  # trust policies have no resources
        resources = statement["resources"]
        resources = resources if isinstance(resources, list) else [resources]  # one expression yielding a list
        if resources == ["*"]:
            assert set(actions) <= UNSCOPABLE_ACTIONS, f"{where}: {actions} on every resource"
        else:
            assert all(str(resource).startswith("${") for resource in resources), f"{where}: {resources}"


def test_role_policies_come_from_checked_documents_and_no_managed_policies_are_attached(
    terraform: dict[str, TerraformModule],
) -> None:
    for path, module in terraform.items():
        assert not module.of_type("aws_iam_role_policy_attachment"), path
        assert not module.of_type("aws_iam_policy"), path
        for name, policy in module.of_type("aws_iam_role_policy").items():
            assert re.fullmatch(r"data\.aws_iam_policy_document\.\w+\.json", str(unwrap(policy["policy"]))), f"{path}: {name}"


def test_task_role_reaches_only_the_table_and_differs_from_the_execution_role(ecs: TerraformModule, dev: TerraformModule) -> None:
    definition = ecs.resource("aws_ecs_task_definition", "api")
    assert unwrap(definition["task_role_arn"]) == "aws_iam_role.task.arn"
    assert unwrap(definition["execution_role_arn"]) == "aws_iam_role.execution.arn"
    statements = ecs.data[("aws_iam_policy_document", "task")]["statement"]
    table_statement = next(s for s in statements if all(a.startswith("dynamodb:") for a in s["actions"]))
    assert [unwrap(resource) for resource in table_statement["resources"]] == ["var.table_arn"]
    assert unwrap(dev.modules["ecs"]["table_arn"]) == "module.dynamodb.table_arn"
    for statement in statements:
        assert all(action.split(":")[0] in {"dynamodb", "kms"} for action in statement["actions"]), statement


def test_execution_role_reads_exactly_the_two_secrets(ecs: TerraformModule) -> None:
    statements = ecs.data[("aws_iam_policy_document", "execution")]["statement"]
    secrets = [s for s in statements if s["actions"] == ["secretsmanager:GetSecretValue"]]
    assert len(secrets) == 1 and unwrap(secrets[0]["resources"]) == "values(local.container_secrets)"


# --- ECS


def test_service_runs_on_fargate_in_private_subnets_without_public_ip(ecs: TerraformModule, dev: TerraformModule) -> None:
    service = ecs.resource("aws_ecs_service", "api")
    assert service["launch_type"] == "FARGATE"
    network = block(service, "network_configuration")
    assert network["assign_public_ip"] is False
    assert unwrap(network["subnets"]) == "var.private_subnet_ids"
    assert unwrap(dev.modules["ecs"]["private_subnet_ids"]) == "module.network.private_subnet_ids"
    assert block(service, "load_balancer")["target_group_arn"] == "${aws_lb_target_group.api.arn}"


def test_cluster_has_container_insights(ecs: TerraformModule) -> None:
    settings = ecs.resource("aws_ecs_cluster", "main")["setting"]
    assert {"name": "containerInsights", "value": "enabled"} in settings


def test_container_has_a_read_only_root_with_tmp_as_its_only_writable_path(ecs: TerraformModule) -> None:
    definition = ecs.resource("aws_ecs_task_definition", "api")
    assert unwrap(definition["container_definitions"]) == "jsonencode([local.container_definition])"
    container = ecs.locals["container_definition"]
    assert container["readonlyRootFilesystem"] is True
    assert [(m["containerPath"], m["readOnly"]) for m in container["mountPoints"]] == [("/tmp", False)]
    assert definition["requires_compatibilities"] == ["FARGATE"] and definition["network_mode"] == "awsvpc"


def test_container_environment_is_the_production_configuration(ecs: TerraformModule) -> None:
    environment = ecs.locals["container_environment"]
    assert str(environment["REDIS_URL"]).startswith("rediss://")
    assert environment["REDIS_URL"] == "rediss://${var.redis_endpoint}:${var.redis_port}/0"
    assert environment["DEBUG"] == "false"
    assert {"CACHE_TTL_SECONDS", "AWS_REGION", "DYNAMODB_TABLE"} <= set(environment)
    assert "DYNAMODB_ENDPOINT_URL" not in environment  # the real DynamoDB endpoint
    secrets = ecs.locals["container_secrets"]
    assert set(secrets) == {"REDIS_PASSWORD", "AUTH_JWT_SECRET"}
    assert not set(secrets) & set(environment), "secrets never travel as plain environment"


def test_every_container_variable_is_a_setting_the_service_reads(
    ecs: TerraformModule, settings_env_names: frozenset[str]
) -> None:
    names = set(ecs.locals["container_environment"]) | set(ecs.locals["container_secrets"])
    assert names - settings_env_names == set()


def test_load_balancer_checks_health_where_the_app_serves_it(ecs: TerraformModule) -> None:
    health_check = block(ecs.resource("aws_lb_target_group", "api"), "health_check")
    assert unwrap(health_check["path"]) == "local.health_path"
    assert ecs.locals["health_path"] == "/healthz"
    listener = ecs.resource("aws_lb_listener", "https")
    assert listener["protocol"] == "HTTPS" and "TLS13" in listener["ssl_policy"]


def test_autoscaling_tracks_service_cpu(ecs: TerraformModule) -> None:
    policy = ecs.resource("aws_appautoscaling_policy", "cpu")
    assert policy["policy_type"] == "TargetTrackingScaling"
    tracking = block(policy, "target_tracking_scaling_policy_configuration")
    assert block(tracking, "predefined_metric_specification")["predefined_metric_type"] == "ECSServiceAverageCPUUtilization"


def test_nightly_task_runs_bookrec_warm_in_the_service_task_definition(ecs: TerraformModule) -> None:
    rule = ecs.resource("aws_cloudwatch_event_rule", "warm")
    assert str(rule["schedule_expression"]).startswith("${var.")
    assert ecs.variables["warm_schedule"]["default"].startswith("cron(")
    target = ecs.resource("aws_cloudwatch_event_target", "warm")
    ecs_target = block(target, "ecs_target")
    assert unwrap(ecs_target["task_definition_arn"]) == "aws_ecs_task_definition.api.arn"
    assert block(ecs_target, "network_configuration")["assign_public_ip"] is False
    assert "local.warm_command" in str(target["input"])
    parse_bookrec(ecs.locals["warm_command"])


# --- Alarms (issue 10): Redis CPU, memory, evictions; 5xx rate; p99 latency.


def test_alarms_cover_redis_and_what_users_feel(cache: TerraformModule, ecs: TerraformModule) -> None:
    redis_metrics = {alarm["metric"] for alarm in cache.locals["node_alarms"].values()}
    assert redis_metrics == {"EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "Evictions"}
    error_rate = ecs.resource("aws_cloudwatch_metric_alarm", "error_rate")
    assert "HTTPCode_Target_5XX_Count" in str(error_rate) and "RequestCount" in str(error_rate)
    latency = ecs.resource("aws_cloudwatch_metric_alarm", "p99_latency")
    assert (latency["metric_name"], latency["extended_statistic"]) == ("TargetResponseTime", "p99")
    for module in (cache, ecs):
        for name, alarm in module.of_type("aws_cloudwatch_metric_alarm").items():
            assert alarm["alarm_actions"] == alarm["ok_actions"] == ["${var.alarm_topic_arn}"], name


def test_environment_outputs_the_endpoints_operators_need(dev: TerraformModule) -> None:
    assert {"redis_endpoint", "redis_port", "alb_dns_name", "table_names"} <= set(dev.outputs)
