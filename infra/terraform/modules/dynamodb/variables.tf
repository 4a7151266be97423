variable "table_name" {
  type        = string
  description = "Name of the single table holding ratings and books (DYNAMODB_TABLE)."
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key that encrypts the table at rest."
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse DeleteTable until this is switched off: ratings are the one copy of user data."
  default     = true
}
