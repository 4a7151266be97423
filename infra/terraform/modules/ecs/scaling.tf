# CPU target tracking: recommendation misses are CPU-bound (sparse matrix
# products), so CPU is the signal that follows load.
resource "aws_appautoscaling_target" "api" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Nightly `bookrec warm`: fills the cache for active users before the day's
# traffic, with the API's container (image, settings, secrets), subnets and
# security group. Its own task definition only for its task role: listing every
# user is a Scan, which the API's role does not allow.
locals {
  # The API's container less what a batch job has no use for: a port and an HTTP health probe.
  warm_container_definition = merge(
    { for key, value in local.container_definition : key => value if !contains(["portMappings", "healthCheck"], key) },
    {
      name    = "warm"
      command = local.warm_command
      logConfiguration = merge(local.container_definition.logConfiguration, {
        options = merge(local.container_definition.logConfiguration.options, { awslogs-stream-prefix = "warm" })
      })
    },
  )
}

resource "aws_ecs_task_definition" "warm" {
  family                   = "${var.name}-warm"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.warm_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([local.warm_container_definition])
}

resource "aws_cloudwatch_event_rule" "warm" {
  name                = "${var.name}-warm"
  description         = "Warm the recommendation cache nightly"
  schedule_expression = var.warm_schedule
}

resource "aws_cloudwatch_event_target" "warm" {
  rule     = aws_cloudwatch_event_rule.warm.name
  arn      = aws_ecs_cluster.main.arn
  role_arn = aws_iam_role.events.arn

  ecs_target {
    task_definition_arn = aws_ecs_task_definition.warm.arn
    task_count          = 1
    launch_type         = "FARGATE"
    platform_version    = "LATEST"

    network_configuration {
      subnets          = var.private_subnet_ids
      security_groups  = [var.service_security_group_id]
      assign_public_ip = false
    }
  }
}
