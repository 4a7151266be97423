variable "name" {
  type        = string
  description = "Prefix for resource names (at most 25 characters: it prefixes the two bucket names)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,24}$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter, at most 25 characters (S3 bucket_prefix allows 37, and the longest suffix is 12)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key (with rotation on) that encrypts the model objects (SSE-KMS with a bucket key)."
}

variable "prefix" {
  type        = string
  description = "Key prefix the models live under: MODEL_URI is s3://<bucket>/<prefix> (LATEST and versions/<version>/...)."
  default     = "item-model"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$", var.prefix))
    error_message = "prefix must be one or more path segments of lowercase letters, digits, dots, underscores and hyphens, without leading or trailing slashes."
  }
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days an overwritten or deleted object version (an old LATEST, a pruned model version) is kept before it expires."
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "access_log_retention_days" {
  type        = number
  description = "How long the models bucket's server access logs are kept."
  default     = 365
}
