variable "name" {
  type        = string
  description = "Prefix for resource names, e.g. book-recommendation-dev."
}

variable "cidr_block" {
  type        = string
  description = "IPv4 range of the VPC; split into two public and two private /20 subnets."
  default     = "10.40.0.0/16"
}

variable "availability_zone_suffixes" {
  type        = list(string)
  description = "Zones to use, as the letters after the region name; two or more, for Multi-AZ Redis and the load balancer."
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) >= 2
    error_message = "Use at least two availability zones."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key that encrypts the flow-log group (its policy must allow the CloudWatch Logs service)."
}

variable "log_retention_days" {
  type        = number
  description = "How long VPC flow logs are kept."
  default     = 365
}
