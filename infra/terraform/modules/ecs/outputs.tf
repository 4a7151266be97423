output "alb_dns_name" {
  description = "DNS name of the load balancer (point the API's domain at it)."
  value       = aws_lb.api.dns_name
}

output "ecr_repository_url" {
  description = "Repository to push the API image to."
  value       = aws_ecr_repository.api.repository_url
}

output "cluster_name" {
  description = "ECS cluster of the API."
  value       = aws_ecs_cluster.main.name
}

output "service_name" {
  description = "ECS service of the API."
  value       = aws_ecs_service.api.name
}

output "auth_jwt_secret_arn" {
  description = "Secrets Manager secret holding AUTH_JWT_SECRET (an admin token is minted with it: bookrec token)."
  value       = aws_secretsmanager_secret.jwt.arn
}

output "train_task_definition_arn" {
  description = "Task definition of `bookrec train` (run it by hand with aws ecs run-task)."
  value       = aws_ecs_task_definition.train.arn
}

output "train_schedule_name" {
  description = "EventBridge Scheduler schedule that runs the training task."
  value       = aws_scheduler_schedule.train.name
}

output "train_security_group_id" {
  description = "Security group of the training task (for running it by hand)."
  value       = aws_security_group.train.id
}
