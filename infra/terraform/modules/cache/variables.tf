variable "name" {
  type        = string
  description = "Prefix for resource names and the replication group id (at most 40 characters)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter, at most 40 characters (ElastiCache replication group id rules)."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cache's security group."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets (in at least two AZs) for the cache nodes."
}

variable "client_security_group_id" {
  type        = string
  description = "Security group of the API tasks: the only source allowed to reach Redis on its port."
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for Redis at rest, the AUTH token secret and the slow-log group."
}

variable "node_type" {
  type        = string
  description = "ElastiCache node type, e.g. cache.t3.micro."
}

variable "engine_version" {
  type        = string
  description = "Redis engine version (7.x: the service uses SET PX NX and Lua fills)."
  default     = "7.1"
}

variable "num_cache_clusters" {
  type        = number
  description = "Nodes in the replication group: one primary plus replicas; two or more for failover."
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 1 && var.num_cache_clusters <= 6
    error_message = "num_cache_clusters must be between 1 and 6."
  }
}

variable "automatic_failover_enabled" {
  type        = bool
  description = "Promote a replica when the primary fails (needs num_cache_clusters >= 2)."
  default     = true
}

variable "multi_az_enabled" {
  type        = bool
  description = "Place replicas in another AZ than the primary (needs automatic failover)."
  default     = true
}

variable "snapshot_retention_days" {
  type        = number
  description = "Days of daily snapshots kept; 0 turns backups off."
  default     = 7
}

variable "log_retention_days" {
  type        = number
  description = "How long the Redis slow log is kept in CloudWatch Logs."
  default     = 365
}

variable "alarm_topic_arn" {
  type        = string
  description = "SNS topic notified when a cache alarm fires or clears."
}

variable "cpu_alarm_percent" {
  type        = number
  description = "Alarm when the Redis engine thread's CPU stays above this percentage."
  default     = 80
}

variable "memory_alarm_percent" {
  type        = number
  description = "Alarm when used memory stays above this percentage of maxmemory (evictions follow)."
  default     = 80
}

variable "evictions_alarm_threshold" {
  type        = number
  description = "Alarm when more keys than this are evicted in five minutes: the cache is too small for the working set."
  default     = 0
}
