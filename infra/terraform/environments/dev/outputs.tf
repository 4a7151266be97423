output "redis_endpoint" {
  description = "Primary endpoint of the Redis replication group."
  value       = module.cache.primary_endpoint_address
}

output "redis_port" {
  description = "Redis port."
  value       = module.cache.port
}

output "alb_dns_name" {
  description = "DNS name of the API's load balancer."
  value       = module.ecs.alb_dns_name
}

output "table_names" {
  description = "DynamoDB tables (the single ratings-and-books table)."
  value       = [module.dynamodb.table_name]
}

output "ecr_repository_url" {
  description = "Where to push the API image."
  value       = module.ecs.ecr_repository_url
}

output "auth_jwt_secret_arn" {
  description = "Secret holding AUTH_JWT_SECRET, for minting admin tokens."
  value       = module.ecs.auth_jwt_secret_arn
}

output "model_uri" {
  description = "Where `bookrec train` publishes the item model and the API reads it (MODEL_URI, for `bookrec model list/use`)."
  value       = module.models.model_uri
}

output "model_bucket_name" {
  description = "The models bucket."
  value       = module.models.bucket_name
}

output "train_schedule_name" {
  description = "EventBridge Scheduler schedule of the training task (disable it to hold a rollback)."
  value       = module.ecs.train_schedule_name
}
