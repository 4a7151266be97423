variable "project_name" {
  type        = string
  description = "Project name; prefixes every resource name."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, staging, prod)."
}

variable "aws_region" {
  type        = string
  description = "Region everything is created in."
  default     = "us-east-1"
}

variable "node_type" {
  type        = string
  description = "ElastiCache node type of the Redis replication group."
}

variable "image_tag" {
  type        = string
  description = "Tag of the API image pushed to the ECR repository (the git commit; tags are immutable)."
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate (same region) for the load balancer's HTTPS listener."
}

variable "alarm_emails" {
  type        = list(string)
  description = "Addresses subscribed to the alarm topic (each must confirm by email)."
  default     = []
}

variable "train_schedule" {
  type        = string
  description = "EventBridge Scheduler expression of the `bookrec train` task (UTC)."
  default     = "rate(1 hour)"
}

variable "train_schedule_enabled" {
  type        = bool
  description = "Run the training schedule; false holds a rolled-back model (`bookrec model use`) until the cause is fixed."
  default     = true
}

variable "model_refresh_seconds" {
  type        = number
  description = "How often each API worker polls the models bucket's LATEST for a new version."
  default     = 60
}

variable "model_noncurrent_version_days" {
  type        = number
  description = "Days an overwritten or deleted model object version stays restorable in the models bucket."
  default     = 30
}
