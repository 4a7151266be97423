# The dev environment: one VPC, a Redis replication group, the ratings/books
# table, the models bucket, the API service and its hourly training task,
# sharing one customer managed KMS key.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "${var.project_name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

resource "aws_kms_key" "main" {
  description             = "Encrypts ${local.name}: table, Redis, secrets, logs, images, models, alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # Account administrators manage the key; every other principal gets use of
  # it through IAM policies (the task roles) or as a named service below.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryption"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.aws_region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:*" }
        }
      },
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

module "network" {
  source = "../../modules/network"

  name        = local.name
  kms_key_arn = aws_kms_key.main.arn
}

module "dynamodb" {
  source = "../../modules/dynamodb"

  table_name  = local.name
  kms_key_arn = aws_kms_key.main.arn
}

module "models" {
  source = "../../modules/models"

  name                    = local.name
  kms_key_arn             = aws_kms_key.main.arn
  noncurrent_version_days = var.model_noncurrent_version_days
}

module "cache" {
  source = "../../modules/cache"

  name                     = local.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  client_security_group_id = module.network.service_security_group_id
  kms_key_arn              = aws_kms_key.main.arn
  node_type                = var.node_type
  alarm_topic_arn          = aws_sns_topic.alarms.arn
}

module "ecs" {
  source = "../../modules/ecs"

  name                      = local.name
  vpc_id                    = module.network.vpc_id
  vpc_cidr_block            = module.network.vpc_cidr_block
  public_subnet_ids         = module.network.public_subnet_ids
  private_subnet_ids        = module.network.private_subnet_ids
  service_security_group_id = module.network.service_security_group_id
  gateway_prefix_list_ids   = module.network.gateway_prefix_list_ids
  redis_security_group_id   = module.cache.security_group_id
  redis_endpoint            = module.cache.primary_endpoint_address
  redis_port                = module.cache.port
  redis_auth_secret_arn     = module.cache.auth_token_secret_arn
  table_name                = module.dynamodb.table_name
  table_arn                 = module.dynamodb.table_arn
  kms_key_arn               = aws_kms_key.main.arn
  model_bucket_name         = module.models.bucket_name
  model_bucket_arn          = module.models.bucket_arn
  model_prefix              = module.models.prefix
  model_kms_key_arn         = aws_kms_key.main.arn
  model_refresh_seconds     = var.model_refresh_seconds
  train_schedule            = var.train_schedule
  train_schedule_enabled    = var.train_schedule_enabled
  image_tag                 = var.image_tag
  certificate_arn           = var.certificate_arn
  alarm_topic_arn           = aws_sns_topic.alarms.arn
}
