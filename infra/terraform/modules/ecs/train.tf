# `bookrec train` on a schedule: reads every rating (parallel Scan), trains the
# item model and publishes a version to MODEL_URI, where the API tasks pick it
# up. Training is apart from serving: its own task definition (same image),
# roles, security group and log group, run by EventBridge Scheduler on the
# API's cluster. An empty table makes it exit 2, and the task shows as failed.

locals {
  train_container_name = "train"
  train_command        = ["bookrec", "train"]
  train_schedule_name  = "${var.name}-train"

  # Names are the service's settings; tests/infra checks them as for the API.
  train_environment = {
    AWS_REGION          = data.aws_region.current.region
    DYNAMODB_TABLE      = var.table_name
    MODEL_URI           = local.model_uri
    MODEL_KEEP_VERSIONS = tostring(var.model_keep_versions)
    DEBUG               = "false"
    LOG_LEVEL           = var.log_level
  }

  train_container_definition = {
    name                   = local.train_container_name
    image                  = "${aws_ecr_repository.api.repository_url}:${var.image_tag}"
    essential              = true
    command                = local.train_command
    readonlyRootFilesystem = true
    environment            = [for name, value in local.train_environment : { name = name, value = value }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    linuxParameters        = { initProcessEnabled = true }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.train.name
        awslogs-region        = data.aws_region.current.region
        awslogs-stream-prefix = local.train_container_name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "train" {
  name              = "/ecs/${var.name}/train"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_task_definition" "train" {
  family                   = "${var.name}-train"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.train_task_cpu
  memory                   = var.train_task_memory
  execution_role_arn       = aws_iam_role.train_execution.arn
  task_role_arn            = aws_iam_role.train_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([local.train_container_definition])
}

# The training task accepts no connections and talks only to AWS APIs (ECR,
# Logs, DynamoDB, S3) through the VPC endpoints: no Redis, no load balancer.
resource "aws_security_group" "train" {
  #checkov:skip=CKV2_AWS_5:Attached to the training task by aws_scheduler_schedule.train (ecs_parameters.network_configuration), a connection checkov does not follow.
  name        = "${var.name}-train"
  description = "Training task: no ingress, HTTPS out to the VPC endpoints only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "train_to_interface_endpoints" {
  security_group_id = aws_security_group.train.id
  description       = "HTTPS to the VPC's interface endpoints (ECR, Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr_block
}

resource "aws_vpc_security_group_egress_rule" "train_to_gateway_endpoints" {
  count = length(var.gateway_prefix_list_ids)

  security_group_id = aws_security_group.train.id
  description       = "HTTPS to DynamoDB and S3 (models, ECR layers) through the gateway endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.gateway_prefix_list_ids[count.index]
}

resource "aws_scheduler_schedule" "train" {
  #checkov:skip=CKV_AWS_297:The schedule holds no input payload, only ids of the task definition, subnets and group; a customer managed key would also oblige its role to hold kms:Decrypt beyond RunTask and PassRole.
  name                = local.train_schedule_name
  description         = "Train the item model and publish it to ${local.model_uri}"
  schedule_expression = var.train_schedule
  state               = var.train_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.main.arn
    role_arn = aws_iam_role.train_schedule.arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.train.arn
      task_count          = 1
      launch_type         = "FARGATE"
      platform_version    = "LATEST"

      network_configuration {
        subnets          = var.private_subnet_ids
        security_groups  = [aws_security_group.train.id]
        assign_public_ip = false
      }
    }

    # RunTask can fail for want of Fargate capacity: try again within the hour,
    # then leave it to the next run.
    retry_policy {
      maximum_event_age_in_seconds = 1800
      maximum_retry_attempts       = 3
    }
  }
}
