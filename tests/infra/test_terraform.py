"""Security and wiring properties of infra/terraform, read from the HCL itself.

`terraform validate` needs provider downloads, which this machine cannot make;
these checks pin down what the issue asks for instead: Redis reachable only
from the service, encryption everywhere, PITR, least-privilege IAM, an ECS
task configured with settings the service actually reads, a private models
bucket, and training apart from serving (its own task, roles and schedule).
"""

from __future__ import annotations

import re

import pytest

from tests.infra.conftest import TERRAFORM_ROOT, TerraformModule, block, load_hcl, parse_bookrec, unwrap

MODULES = ("modules/network", "modules/cache", "modules/dynamodb", "modules/models", "modules/ecs", "environments/dev")


@pytest.fixture(scope="module")
def cache(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["modules/cache"]


@pytest.fixture(scope="module")
def ecs(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["modules/ecs"]


@pytest.fixture(scope="module")
def dev(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["environments/dev"]


@pytest.fixture(scope="module")
def models(terraform: dict[str, TerraformModule]) -> TerraformModule:
    return terraform["modules/models"]


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


def _document(module: TerraformModule, name: str) -> list[dict]:
    """The statements of data.aws_iam_policy_document.<name>."""
    return module.data[("aws_iam_policy_document", name)]["statement"]


def _resources(statement: dict) -> set[object]:
    resources = statement["resources"]
    return {unwrap(resource) for resource in (resources if isinstance(resources, list) else [resources])}


def _actions(statements: list[dict], service: str | None = None) -> set[str]:
    """The actions the statements allow, optionally those of one service ("s3")."""
    return {
        action
        for statement in statements
        if statement.get("effect", "Allow") == "Allow"
        for action in statement["actions"]
        if service is None or action.startswith(f"{service}:")
    }


def _conditions(statement: dict) -> dict[str, tuple[str, list[str]]]:
    """variable -> (test, values) of a statement's condition blocks."""
    return {condition["variable"]: (condition["test"], condition["values"]) for condition in statement.get("condition", [])}


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


def test_task_role_reaches_only_the_table_and_the_models_and_differs_from_the_execution_role(
    ecs: TerraformModule, dev: TerraformModule
) -> None:
    definition = ecs.resource("aws_ecs_task_definition", "api")
    assert unwrap(definition["task_role_arn"]) == "aws_iam_role.task.arn"
    assert unwrap(definition["execution_role_arn"]) == "aws_iam_role.execution.arn"
    statements = _document(ecs, "task")
    table_statement = next(s for s in statements if all(a.startswith("dynamodb:") for a in s["actions"]))
    assert [unwrap(resource) for resource in table_statement["resources"]] == ["var.table_arn"]
    assert unwrap(dev.modules["ecs"]["table_arn"]) == "module.dynamodb.table_arn"
    for statement in statements:
        assert all(action.split(":")[0] in {"dynamodb", "kms", "s3"} for action in statement["actions"]), statement
        if any(action.startswith("s3:") for action in statement["actions"]):
            assert _resources(statement) <= {"var.model_bucket_arn", "local.model_objects_arn"}, statement


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
    # Serving reads the trained model from the bucket and polls for new versions.
    assert unwrap(environment["MODEL_URI"]) == "local.model_uri"
    assert unwrap(environment["MODEL_REFRESH_SECONDS"]) == "tostring(var.model_refresh_seconds)"
    assert ecs.variables["model_refresh_seconds"]["default"] > 0
    secrets = ecs.locals["container_secrets"]
    assert set(secrets) == {"REDIS_PASSWORD", "AUTH_JWT_SECRET"}
    assert not set(secrets) & set(environment), "secrets never travel as plain environment"


def test_every_container_variable_is_a_setting_the_service_reads(
    ecs: TerraformModule, settings_env_names: frozenset[str]
) -> None:
    names = set(ecs.locals["container_environment"]) | set(ecs.locals["container_secrets"])
    assert names - settings_env_names == set()
    assert set(ecs.locals["train_environment"]) - settings_env_names == set()


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


def test_nightly_task_runs_bookrec_warm_in_the_service_container_with_the_task_role_plus_scan(ecs: TerraformModule) -> None:
    rule = ecs.resource("aws_cloudwatch_event_rule", "warm")
    assert str(rule["schedule_expression"]).startswith("${var.")
    assert ecs.variables["warm_schedule"]["default"].startswith("cron(")
    target = ecs.resource("aws_cloudwatch_event_target", "warm")
    ecs_target = block(target, "ecs_target")
    assert unwrap(ecs_target["task_definition_arn"]) == "aws_ecs_task_definition.warm.arn"
    assert block(ecs_target, "network_configuration")["assign_public_ip"] is False
    definition = ecs.resource("aws_ecs_task_definition", "warm")
    assert unwrap(definition["container_definitions"]) == "jsonencode([local.warm_container_definition])"
    assert unwrap(definition["execution_role_arn"]) == "aws_iam_role.execution.arn"
    assert unwrap(definition["task_role_arn"]) == "aws_iam_role.warm_task.arn"
    # The API's container (image, settings, secrets, read-only root) with the warm command,
    # less its port and HTTP probe.
    container = str(ecs.locals["warm_container_definition"])
    assert "local.container_definition" in container and "local.warm_command" in container
    assert '["portMappings", "healthCheck"]' in container
    parse_bookrec(ecs.locals["warm_command"])
    # Its role is the serving role plus the Scan that lists every user (RatingsRepository.user_ids).
    warm = ecs.data[("aws_iam_policy_document", "warm_task")]
    assert [unwrap(source) for source in warm["source_policy_documents"]] == ["data.aws_iam_policy_document.task.json"]
    (scan,) = warm["statement"]
    assert scan["actions"] == ["dynamodb:Scan"] and _resources(scan) == {"var.table_arn"}
    run, pass_role = _document(ecs, "events")
    assert _resources(run) == {"aws_ecs_task_definition.warm.arn"}
    assert _resources(pass_role) == {"aws_iam_role.execution.arn", "aws_iam_role.warm_task.arn"}


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
    assert {"redis_endpoint", "redis_port", "alb_dns_name", "table_names", "model_uri", "train_schedule_name"} <= set(dev.outputs)


def test_no_iam_statement_anywhere_grants_a_wildcard_action(terraform: dict[str, TerraformModule]) -> None:
    """Allows name every action; the only wildcard is in a Deny of every non-TLS request to a bucket."""
    documents = [
        (path, name, body)
        for path, module in terraform.items()
        for (kind, name), body in module.data.items()
        if kind == "aws_iam_policy_document"
    ]
    assert len(documents) >= 15
    for path, name, body in documents:
        for statement in body.get("statement", []):
            where = f"{path}: data.aws_iam_policy_document.{name} {statement.get('sid', '')}"
            wildcards = [action for action in statement["actions"] if "*" in action]
            if statement.get("effect", "Allow") == "Allow":
                assert wildcards == [], f"{where}: allows {wildcards}"
            elif wildcards:
                assert _conditions(statement) == {"aws:SecureTransport": ("Bool", ["false"])}, where


# --- Models bucket: what `bookrec train` publishes and the API reads.


def test_models_bucket_blocks_every_kind_of_public_access(terraform: dict[str, TerraformModule], models: TerraformModule) -> None:
    for bucket in ("models", "access_logs"):
        block_ = models.resource("aws_s3_bucket_public_access_block", bucket)
        assert unwrap(block_["bucket"]) == f"aws_s3_bucket.{bucket}.id"
        for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert block_[setting] is True, (bucket, setting)
        ownership = block(models.resource("aws_s3_bucket_ownership_controls", bucket), "rule")
        assert ownership["object_ownership"] == "BucketOwnerEnforced", "ACLs off: the bucket policy is the only grant"
    for path, module in terraform.items():
        assert not module.of_type("aws_s3_bucket_acl"), path
        assert not module.of_type("aws_s3_object"), f"{path}: models come from `bookrec train`, not from Terraform"


def test_models_bucket_policy_denies_every_request_without_tls(models: TerraformModule) -> None:
    for bucket in ("models", "access_logs"):
        policy = models.resource("aws_s3_bucket_policy", bucket)
        assert unwrap(policy["bucket"]) == f"aws_s3_bucket.{bucket}.id"
        assert unwrap(policy["policy"]) == f"data.aws_iam_policy_document.{bucket}.json"
        statements = _document(models, bucket)
        deny = next(s for s in statements if s.get("effect") == "Deny")
        assert deny["actions"] == ["s3:*"]
        assert _resources(deny) == {f"aws_s3_bucket.{bucket}.arn", f"${{aws_s3_bucket.{bucket}.arn}}/*"}
        assert deny["principals"] == [{"type": "*", "identifiers": ["*"]}]
        assert _conditions(deny) == {"aws:SecureTransport": ("Bool", ["false"])}
        for statement in statements:  # nothing is granted to the world
            if statement.get("effect", "Allow") == "Allow":
                assert all(principal["type"] == "Service" for principal in statement["principals"]), statement
    # The models bucket's policy grants nothing at all: the task roles' own policies do.
    assert [s.get("effect") for s in _document(models, "models")] == ["Deny"]


def test_models_bucket_is_versioned_and_encrypted_with_the_rotating_customer_managed_key(
    models: TerraformModule, dev: TerraformModule
) -> None:
    versioning = block(models.resource("aws_s3_bucket_versioning", "models"), "versioning_configuration")
    assert versioning["status"] == "Enabled"
    rule = block(models.resource("aws_s3_bucket_server_side_encryption_configuration", "models"), "rule")
    default = block(rule, "apply_server_side_encryption_by_default")
    assert default["sse_algorithm"] == "aws:kms"
    assert unwrap(default["kms_master_key_id"]) == "var.kms_key_arn"
    assert rule["bucket_key_enabled"] is True
    # ...the environment's customer managed key, which rotates (checked above).
    assert unwrap(dev.modules["models"]["kms_key_arn"]) == "aws_kms_key.main.arn"
    assert dev.resource("aws_kms_key", "main")["enable_key_rotation"] is True


def test_models_bucket_expires_noncurrent_versions_and_aborts_incomplete_uploads(models: TerraformModule) -> None:
    configuration = models.resource("aws_s3_bucket_lifecycle_configuration", "models")
    assert unwrap(configuration["bucket"]) == "aws_s3_bucket.models.id"
    rule = block(configuration, "rule")
    assert rule["status"] == "Enabled"
    assert rule["filter"] == [{}], "the rule covers every object"
    assert unwrap(block(rule, "noncurrent_version_expiration")["noncurrent_days"]) == "var.noncurrent_version_days"
    assert models.variables["noncurrent_version_days"]["default"] == 30
    assert block(rule, "abort_incomplete_multipart_upload")["days_after_initiation"] >= 1
    # Current objects never expire by age: LATEST and the kept versions are pruned by `bookrec train`.
    assert "days" not in block(rule, "expiration")


def test_models_bucket_access_is_logged_to_its_own_log_bucket(models: TerraformModule) -> None:
    logging = models.resource("aws_s3_bucket_logging", "models")
    assert unwrap(logging["bucket"]) == "aws_s3_bucket.models.id"
    assert unwrap(logging["target_bucket"]) == "aws_s3_bucket.access_logs.id"
    delivery = next(s for s in _document(models, "access_logs") if s.get("effect", "Allow") == "Allow")
    assert delivery["actions"] == ["s3:PutObject"]
    assert delivery["principals"] == [{"type": "Service", "identifiers": ["logging.s3.amazonaws.com"]}]
    assert _conditions(delivery)["aws:SourceArn"] == ("ArnLike", ["${aws_s3_bucket.models.arn}"])


def test_model_uri_is_the_bucket_and_prefix_in_the_module_and_the_tasks(
    models: TerraformModule, ecs: TerraformModule, dev: TerraformModule
) -> None:
    assert models.locals["model_uri"] == "s3://${aws_s3_bucket.models.bucket}/${var.prefix}"
    assert unwrap(models.outputs["model_uri"]["value"]) == "local.model_uri"
    assert ecs.locals["model_uri"] == "s3://${var.model_bucket_name}/${var.model_prefix}"
    assert ecs.locals["model_objects_arn"] == "${var.model_bucket_arn}/${var.model_prefix}/*"
    wiring = dev.modules["ecs"]
    assert unwrap(wiring["model_bucket_name"]) == "module.models.bucket_name"
    assert unwrap(wiring["model_bucket_arn"]) == "module.models.bucket_arn"
    assert unwrap(wiring["model_prefix"]) == "module.models.prefix"
    assert unwrap(wiring["model_kms_key_arn"]) == unwrap(dev.modules["models"]["kms_key_arn"]), "the bucket's own key"
    assert unwrap(models.outputs["bucket_arn"]["value"]) == "aws_s3_bucket.models.arn"
    assert unwrap(models.outputs["prefix"]["value"]) == "var.prefix"


# --- Training apart from serving: `bookrec train` on a schedule, its own task and roles.


def test_train_schedule_runs_hourly_by_default_and_targets_the_train_task(ecs: TerraformModule, dev: TerraformModule) -> None:
    schedule = ecs.resource("aws_scheduler_schedule", "train")
    assert unwrap(schedule["schedule_expression"]) == "var.train_schedule"
    assert ecs.variables["train_schedule"]["default"] == "rate(1 hour)"
    assert dev.variables["train_schedule"]["default"] == "rate(1 hour)"
    assert unwrap(dev.modules["ecs"]["train_schedule"]) == "var.train_schedule"
    assert block(schedule, "flexible_time_window")["mode"] == "OFF"
    assert "var.train_schedule_enabled" in schedule["state"] and ecs.variables["train_schedule_enabled"]["default"] is True
    target = block(schedule, "target")
    assert unwrap(target["arn"]) == "aws_ecs_cluster.main.arn", "the API's cluster"
    assert unwrap(target["role_arn"]) == "aws_iam_role.train_schedule.arn"
    parameters = block(target, "ecs_parameters")
    assert unwrap(parameters["task_definition_arn"]) == "aws_ecs_task_definition.train.arn"
    assert parameters["launch_type"] == "FARGATE" and parameters["task_count"] == 1
    network = block(parameters, "network_configuration")
    assert network["assign_public_ip"] is False
    assert unwrap(network["subnets"]) == "var.private_subnet_ids"
    assert [unwrap(group) for group in network["security_groups"]] == ["aws_security_group.train.id"]


def test_train_task_runs_bookrec_train_in_the_service_image_with_its_own_roles_and_log_group(
    ecs: TerraformModule, settings_env_names: frozenset[str]
) -> None:
    definition = ecs.resource("aws_ecs_task_definition", "train")
    assert unwrap(definition["container_definitions"]) == "jsonencode([local.train_container_definition])"
    assert definition["requires_compatibilities"] == ["FARGATE"] and definition["network_mode"] == "awsvpc"
    assert unwrap(definition["task_role_arn"]) == "aws_iam_role.train_task.arn"
    assert unwrap(definition["execution_role_arn"]) == "aws_iam_role.train_execution.arn"
    container = ecs.locals["train_container_definition"]
    assert unwrap(container["command"]) == "local.train_command"
    assert ecs.locals["train_command"] == ["bookrec", "train"]
    parse_bookrec(ecs.locals["train_command"])
    assert container["image"] == ecs.locals["container_definition"]["image"], "the service's image"
    assert container["readonlyRootFilesystem"] is True
    assert [(m["containerPath"], m["readOnly"]) for m in container["mountPoints"]] == [("/tmp", False)]
    assert "secrets" not in container and "portMappings" not in container
    log_options = container["logConfiguration"]["options"]
    assert unwrap(log_options["awslogs-group"]) == "aws_cloudwatch_log_group.train.name"
    assert ecs.resource("aws_cloudwatch_log_group", "train")["name"] != ecs.resource("aws_cloudwatch_log_group", "api")["name"]
    environment = ecs.locals["train_environment"]
    assert unwrap(environment["MODEL_URI"]) == "local.model_uri"
    assert unwrap(environment["DYNAMODB_TABLE"]) == "var.table_name"
    assert "DYNAMODB_ENDPOINT_URL" not in environment
    assert set(environment) <= settings_env_names


def test_train_schedule_role_may_only_run_the_train_task_and_pass_its_two_roles(ecs: TerraformModule) -> None:
    role = ecs.resource("aws_iam_role", "train_schedule")
    assert unwrap(role["assume_role_policy"]) == "data.aws_iam_policy_document.scheduler_assume.json"
    (trust,) = _document(ecs, "scheduler_assume")
    assert trust["principals"] == [{"type": "Service", "identifiers": ["scheduler.amazonaws.com"]}]
    assert "aws:SourceAccount" in _conditions(trust)
    policy = ecs.resource("aws_iam_role_policy", "train_schedule")
    assert unwrap(policy["role"]) == "aws_iam_role.train_schedule.id"
    assert unwrap(policy["policy"]) == "data.aws_iam_policy_document.train_schedule.json"
    run, pass_role = _document(ecs, "train_schedule")
    assert run["actions"] == ["ecs:RunTask"]
    assert _resources(run) == {"aws_ecs_task_definition.train.arn"}
    assert _conditions(run)["ecs:cluster"] == ("ArnEquals", ["${aws_ecs_cluster.main.arn}"])
    assert pass_role["actions"] == ["iam:PassRole"]
    assert _resources(pass_role) == {"aws_iam_role.train_execution.arn", "aws_iam_role.train_task.arn"}
    assert _conditions(pass_role)["iam:PassedToService"] == ("StringEquals", ["ecs-tasks.amazonaws.com"])


def test_train_role_scans_the_table_and_writes_models_only_under_the_prefix(ecs: TerraformModule) -> None:
    statements = _document(ecs, "train_task")
    assert _actions(statements, "dynamodb") == {"dynamodb:Scan", "dynamodb:DescribeTable"}
    assert _actions(statements, "s3") == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert _actions(statements, "kms") == {"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"}
    assert {action.split(":")[0] for action in _actions(statements)} == {"dynamodb", "s3", "kms"}
    for statement in statements:
        actions = set(statement["actions"])
        if actions & {"dynamodb:Scan"}:
            assert _resources(statement) == {"var.table_arn"}
        if actions & {"s3:PutObject", "s3:DeleteObject", "s3:GetObject"}:
            assert _resources(statement) == {"local.model_objects_arn"}, "objects under the prefix only"
        if "s3:ListBucket" in actions:
            assert _resources(statement) == {"var.model_bucket_arn"}
            assert _conditions(statement)["s3:prefix"] == ("StringLike", ["${var.model_prefix}/*"])
        if actions & {"kms:Encrypt", "kms:GenerateDataKey"}:
            assert _resources(statement) == {"var.model_kms_key_arn"}
            assert "kms:ViaService" in _conditions(statement)
    # Its execution role starts the task and nothing more: no secrets, its own log group.
    execution = _document(ecs, "train_execution")
    assert not _actions(execution, "secretsmanager")
    logs = next(s for s in execution if _actions([s], "logs"))
    assert _resources(logs) == {"${aws_cloudwatch_log_group.train.arn}:*"}


def test_serve_role_never_scans_and_only_reads_models(ecs: TerraformModule) -> None:
    statements = _document(ecs, "task")
    dynamodb = _actions(statements, "dynamodb")
    assert "dynamodb:Scan" not in dynamodb, "serving reads models; only training scans the table"
    assert {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
    } <= dynamodb
    s3 = _actions(statements, "s3")
    assert s3 == {"s3:GetObject", "s3:ListBucket"}
    assert not [action for action in s3 if action.startswith(("s3:Put", "s3:Delete"))]
    model_key = [s for s in statements if _resources(s) == {"var.model_kms_key_arn"}]
    assert model_key and _actions(model_key) == {"kms:Decrypt"}
    # Only the API service runs with this role (warm and train have their own task definitions).
    definitions = {name: unwrap(body["task_role_arn"]) for name, body in ecs.of_type("aws_ecs_task_definition").items()}
    assert [name for name, role in definitions.items() if role == "aws_iam_role.task.arn"] == ["api"]
    assert unwrap(ecs.resource("aws_ecs_service", "api")["task_definition"]) == "aws_ecs_task_definition.api.arn"


def test_train_task_security_group_accepts_nothing_and_reaches_only_https(ecs: TerraformModule) -> None:
    rules = {
        (kind, name): body
        for (kind, name), body in ecs.resources.items()
        if kind.startswith("aws_vpc_security_group_") and unwrap(body["security_group_id"]) == "aws_security_group.train.id"
    }
    assert rules and all(kind == "aws_vpc_security_group_egress_rule" for kind, _ in rules)
    assert all(rule["from_port"] == rule["to_port"] == 443 and rule["ip_protocol"] == "tcp" for rule in rules.values())
