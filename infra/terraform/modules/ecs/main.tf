# The API on Fargate: private subnets, no public IP, read-only root filesystem,
# configuration from environment variables and Secrets Manager.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  container_name = "api"
  container_port = 8000
  health_path    = "/healthz"

  # Where `bookrec train` publishes and the API reads: LATEST and versions/<version>/...
  model_uri         = "s3://${var.model_bucket_name}/${var.model_prefix}"
  model_objects_arn = "${var.model_bucket_arn}/${var.model_prefix}/*"

  # Names are the service's settings (graphql_api/settings.py); tests/infra
  # checks every one of them is a setting the service reads.
  container_environment = {
    REDIS_URL         = "rediss://${var.redis_endpoint}:${var.redis_port}/0"
    CACHE_TTL_SECONDS = tostring(var.cache_ttl_seconds)
    AWS_REGION        = data.aws_region.current.region
    DYNAMODB_TABLE    = var.table_name
    DEBUG             = "false"
    LOG_LEVEL         = var.log_level
    WEB_CONCURRENCY   = tostring(var.web_concurrency)
    # Each worker polls LATEST and downloads a new version into MODEL_CACHE_DIR
    # (the image sets it under /tmp, the one writable path).
    MODEL_URI             = local.model_uri
    MODEL_REFRESH_SECONDS = tostring(var.model_refresh_seconds)
  }
  container_secrets = {
    REDIS_PASSWORD  = var.redis_auth_secret_arn
    AUTH_JWT_SECRET = aws_secretsmanager_secret.jwt.arn
  }

  # The nightly job runs in the API's task definition with this command instead.
  warm_command = ["bookrec", "warm"]

  container_definition = {
    name                   = local.container_name
    image                  = "${aws_ecr_repository.api.repository_url}:${var.image_tag}"
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = local.container_port, protocol = "tcp" }]
    environment            = [for name, value in local.container_environment : { name = name, value = value }]
    secrets                = [for name, arn in local.container_secrets : { name = name, valueFrom = arn }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    linuxParameters        = { initProcessEnabled = true }
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${local.container_port}${local.health_path}', timeout=2)"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.api.name
        awslogs-region        = data.aws_region.current.region
        awslogs-stream-prefix = local.container_name
      }
    }
  }
}

resource "aws_ecr_repository" "api" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecs_cluster" "main" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/ecs/${var.name}/api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# Generated here, never typed: HS256 signing key of the API's bearer tokens.
resource "random_password" "jwt" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:A new signing key invalidates every issued token, so it is rotated deliberately (terraform apply -replace=random_password.jwt, then a new deployment), not on a timer.
  name                    = "${var.name}/auth-jwt-secret"
  description             = "HS256 secret of the ${var.name} API's bearer tokens (AUTH_JWT_SECRET)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "jwt" {
  secret_id     = aws_secretsmanager_secret.jwt.id
  secret_string = random_password.jwt.result
}

resource "aws_ecs_task_definition" "api" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Fargate has no tmpfs: an ephemeral task volume gives the read-only
  # container its one writable directory.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([local.container_definition])
}

resource "aws_ecs_service" "api" {
  name                              = "api"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = 60
  propagate_tags                    = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.service_security_group_id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count] # owned by autoscaling after the first deployment
  }

  depends_on = [aws_lb_listener.https]
}

# The tasks' rules: in from the load balancer only; out to Redis and to AWS
# APIs through the VPC endpoints only.
resource "aws_vpc_security_group_ingress_rule" "service_from_alb" {
  security_group_id            = var.service_security_group_id
  description                  = "HTTP from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_redis" {
  security_group_id            = var.service_security_group_id
  description                  = "Redis (TLS)"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = var.redis_security_group_id
}

resource "aws_vpc_security_group_egress_rule" "service_to_interface_endpoints" {
  security_group_id = var.service_security_group_id
  description       = "HTTPS to the VPC's interface endpoints (ECR, Logs, Secrets Manager)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr_block
}

resource "aws_vpc_security_group_egress_rule" "service_to_gateway_endpoints" {
  count = length(var.gateway_prefix_list_ids)

  security_group_id = var.service_security_group_id
  description       = "HTTPS to DynamoDB and S3 (ECR layers) through the gateway endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.gateway_prefix_list_ids[count.index]
}
