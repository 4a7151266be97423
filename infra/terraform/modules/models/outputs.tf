output "bucket_name" {
  description = "Name of the models bucket."
  value       = aws_s3_bucket.models.bucket
}

output "bucket_arn" {
  description = "ARN of the models bucket, for least-privilege IAM policies."
  value       = aws_s3_bucket.models.arn
}

output "prefix" {
  description = "Key prefix of the models inside the bucket (no slashes at either end)."
  value       = var.prefix
}

output "model_uri" {
  description = "MODEL_URI of the train and serve tasks: s3://<bucket>/<prefix>."
  value       = local.model_uri
}
