variable "name" {
  type        = string
  description = "Prefix for resource names (at most 32 characters: it also names the load balancer)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter, at most 32 characters."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the load balancer and the tasks."
}

variable "vpc_cidr_block" {
  type        = string
  description = "IPv4 range of the VPC: tasks reach the interface endpoints (ECR, Logs, Secrets Manager) there on 443."
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Subnets of the internet-facing load balancer."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Subnets of the tasks (no public IPs)."
}

variable "service_security_group_id" {
  type        = string
  description = "Security group of the API tasks, created by the network module; this module adds its rules."
}

variable "gateway_prefix_list_ids" {
  type        = list(string)
  description = "Prefix lists of the DynamoDB and S3 gateway endpoints the tasks may reach on 443."
}

variable "redis_security_group_id" {
  type        = string
  description = "Security group of the Redis nodes: the tasks' only egress besides AWS APIs."
}

variable "redis_endpoint" {
  type        = string
  description = "Primary endpoint address of the Redis replication group."
}

variable "redis_port" {
  type        = number
  description = "Redis port."
}

variable "redis_auth_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the Redis AUTH token, passed to the tasks as REDIS_PASSWORD."
}

variable "table_name" {
  type        = string
  description = "DynamoDB table of ratings and books (DYNAMODB_TABLE)."
}

variable "table_arn" {
  type        = string
  description = "ARN of that table: the task role may touch nothing else."
}

variable "model_bucket_name" {
  type        = string
  description = "S3 bucket of the trained item models (MODEL_URI is s3://<bucket>/<model_prefix>)."
}

variable "model_bucket_arn" {
  type        = string
  description = "ARN of that bucket: the train role writes and the task role reads only under model_prefix in it."
}

variable "model_prefix" {
  type        = string
  description = "Key prefix of the models in the bucket, without slashes at either end."
}

variable "model_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key of the models bucket (its SSE-KMS bucket key)."
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key of the table, the secrets, the log groups and the image repository."
}

variable "image_tag" {
  type        = string
  description = "Tag of the API image in this module's ECR repository (tags are immutable: use the git commit)."
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate of the HTTPS listener."
}

variable "ingress_cidr_blocks" {
  type        = list(string)
  description = "Client ranges allowed to reach the load balancer on 443."
  default     = ["0.0.0.0/0"]
}

variable "task_cpu" {
  type        = number
  description = "Fargate task CPU units (1024 = one vCPU)."
  default     = 1024
}

variable "task_memory" {
  type        = number
  description = "Fargate task memory in MiB (each worker holds a model snapshot)."
  default     = 2048
}

variable "web_concurrency" {
  type        = number
  description = "uvicorn worker processes per task (WEB_CONCURRENCY)."
  default     = 2
}

variable "desired_count" {
  type        = number
  description = "Tasks at first deployment; autoscaling owns the count afterwards."
  default     = 2
}

variable "min_count" {
  type        = number
  description = "Fewest tasks autoscaling keeps (two spread the service over both AZs)."
  default     = 2
}

variable "max_count" {
  type        = number
  description = "Most tasks autoscaling may run."
  default     = 6
}

variable "cpu_target_percent" {
  type        = number
  description = "Average service CPU that target tracking holds."
  default     = 60
}

variable "cache_ttl_seconds" {
  type        = number
  description = "Lifetime of cached recommendations (CACHE_TTL_SECONDS)."
  default     = 600
}

variable "log_level" {
  type        = string
  description = "Service log level (LOG_LEVEL)."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "model_refresh_seconds" {
  type        = number
  description = "How often each API worker polls LATEST for a newly trained model (MODEL_REFRESH_SECONDS); 0 never."
  default     = 60

  validation {
    condition     = var.model_refresh_seconds >= 0
    error_message = "model_refresh_seconds must be 0 (never) or more."
  }
}

variable "model_keep_versions" {
  type        = number
  description = "Model versions `bookrec train` keeps under the prefix, the newest included (MODEL_KEEP_VERSIONS): how far `bookrec model use` can roll back."
  default     = 5

  validation {
    condition     = var.model_keep_versions >= 2
    error_message = "model_keep_versions must be at least 2, or there is nothing to roll back to."
  }
}

variable "train_schedule" {
  type        = string
  description = "EventBridge Scheduler expression of the `bookrec train` task (rate() or cron(), UTC)."
  default     = "rate(1 hour)"
}

variable "train_schedule_enabled" {
  type        = bool
  description = "Run the training schedule; switch off to hold a rolled-back model (the next run would publish a new LATEST)."
  default     = true
}

variable "train_task_cpu" {
  type        = number
  description = "Fargate CPU units of the training task (1024 = one vCPU)."
  default     = 1024
}

variable "train_task_memory" {
  type        = number
  description = "Fargate memory of the training task in MiB (it holds every rating and the item-item matrices)."
  default     = 4096
}

variable "warm_schedule" {
  type        = string
  description = "EventBridge schedule of the nightly `bookrec warm` task (UTC)."
  default     = "cron(0 3 * * ? *)"
}

variable "log_retention_days" {
  type        = number
  description = "How long service, WAF and load balancer logs are kept."
  default     = 365
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the load balancer from deletion."
  default     = true
}

variable "waf_rate_limit" {
  type        = number
  description = "Requests per client IP in any five minutes before WAF blocks it."
  default     = 2000
}

variable "alarm_topic_arn" {
  type        = string
  description = "SNS topic notified when a service alarm fires or clears."
}

variable "error_rate_alarm_percent" {
  type        = number
  description = "Alarm when 5xx responses (from targets or the load balancer) exceed this percentage of requests."
  default     = 1
}

variable "p99_latency_alarm_seconds" {
  type        = number
  description = "Alarm when the 99th percentile of target response time exceeds this many seconds."
  default     = 0.5
}
