# Roles, each limited to named resources:
#   execution:       what ECS itself needs to start an API task (pull the image,
#                    write logs, read the two secrets);
#   task:            what the service's code may do: item reads and writes on the
#                    one table (never Scan) and read-only access to the models;
#   warm_task:       the task role plus the Scan that lists every user (`bookrec warm`);
#   events:          what the nightly warm schedule may do (run the warm task definition);
#   train_execution: what ECS needs to start the training task (image, its logs; no secrets);
#   train_task:      what `bookrec train` may do: Scan the table, write the models;
#   train_schedule:  what the training schedule may do (run the training task definition).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.api.arn]
  }

  # GetAuthorizationToken has no resource-level permissions: AWS only accepts "*".
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.api.arn}:*"]
  }

  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(local.container_secrets)
  }

  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-api-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "RatingsAndBooks"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ]
    resources = [var.table_arn]
  }

  # The table's customer managed key, used by DynamoDB on the task's behalf.
  statement {
    sid       = "TableKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${data.aws_region.current.region}.amazonaws.com"]
    }
  }

  # Serving reads models: LATEST, the version's objects, and the list of versions.
  statement {
    sid       = "ListModelVersions"
    actions   = ["s3:ListBucket"]
    resources = [var.model_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = [local.model_objects_arn]
  }

  statement {
    sid       = "ModelKeyDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [var.model_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.region}.amazonaws.com"]
    }

    # With a bucket key the encryption context is the bucket's ARN.
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [var.model_bucket_arn, local.model_objects_arn]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "read-write-table"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

resource "aws_iam_role" "warm_task" {
  name               = "${var.name}-warm-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# What serving may do, plus the one Scan `bookrec warm` needs: RatingsRepository.user_ids
# lists every user by a parallel Scan projecting user_id.
data "aws_iam_policy_document" "warm_task" {
  source_policy_documents = [data.aws_iam_policy_document.task.json]

  statement {
    sid       = "ListUsers"
    actions   = ["dynamodb:Scan"]
    resources = [var.table_arn]
  }
}

resource "aws_iam_role_policy" "warm_task" {
  name   = "warm"
  role   = aws_iam_role.warm_task.id
  policy = data.aws_iam_policy_document.warm_task.json
}

data "aws_iam_policy_document" "events_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "events" {
  name               = "${var.name}-warm-schedule"
  assume_role_policy = data.aws_iam_policy_document.events_assume.json
}

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "RunWarmTask"
    actions   = ["ecs:RunTask"]
    resources = [aws_ecs_task_definition.warm.arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.main.arn]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.warm_task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "events" {
  name   = "run-warm-task"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

# --- Training: its own execution role, task role and schedule role.

resource "aws_iam_role" "train_execution" {
  name               = "${var.name}-train-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "train_execution" {
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.api.arn]
  }

  # GetAuthorizationToken has no resource-level permissions: AWS only accepts "*".
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.train.arn}:*"]
  }
}

resource "aws_iam_role_policy" "train_execution" {
  name   = "start-train-task"
  role   = aws_iam_role.train_execution.id
  policy = data.aws_iam_policy_document.train_execution.json
}

resource "aws_iam_role" "train_task" {
  name               = "${var.name}-train-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "train_task" {
  # Every rating, by parallel Scan; nothing else on the table.
  statement {
    sid       = "ScanRatings"
    actions   = ["dynamodb:DescribeTable", "dynamodb:Scan"]
    resources = [var.table_arn]
  }

  statement {
    sid       = "TableKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${data.aws_region.current.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "ListModelVersions"
    actions   = ["s3:ListBucket"]
    resources = [var.model_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_prefix}/*"]
    }
  }

  # Publish a version (one PutObject per file, the manifest last), then LATEST;
  # prune versions beyond MODEL_KEEP_VERSIONS (DeleteObjects checks s3:DeleteObject).
  statement {
    sid       = "PublishModels"
    actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    resources = [local.model_objects_arn]
  }

  statement {
    sid       = "ModelKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.model_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.region}.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [var.model_bucket_arn, local.model_objects_arn]
    }
  }
}

resource "aws_iam_role_policy" "train_task" {
  name   = "train"
  role   = aws_iam_role.train_task.id
  policy = data.aws_iam_policy_document.train_task.json
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    # Only the training schedule (its ARN written out: the schedule refers to this role).
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:scheduler:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:schedule/default/${local.train_schedule_name}"]
    }
  }
}

resource "aws_iam_role" "train_schedule" {
  name               = "${var.name}-train-schedule"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "train_schedule" {
  statement {
    sid       = "RunTrainTask"
    actions   = ["ecs:RunTask"]
    resources = [aws_ecs_task_definition.train.arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.main.arn]
    }
  }

  statement {
    sid       = "PassTrainRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.train_execution.arn, aws_iam_role.train_task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "train_schedule" {
  name   = "run-train-task"
  role   = aws_iam_role.train_schedule.id
  policy = data.aws_iam_policy_document.train_schedule.json
}
