output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.main.id
}

output "vpc_cidr_block" {
  description = "IPv4 range of the VPC (where the interface endpoints listen)."
  value       = aws_vpc.main.cidr_block
}

output "public_subnet_ids" {
  description = "Subnets of the internet-facing load balancer, one per AZ."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Subnets of the tasks and of Redis, one per AZ; no route to the internet."
  value       = aws_subnet.private[*].id
}

output "gateway_prefix_list_ids" {
  description = "Prefix lists of the DynamoDB and S3 gateway endpoints, for security-group egress rules."
  value       = [for endpoint in aws_vpc_endpoint.gateway : endpoint.prefix_list_id]
}

output "service_security_group_id" {
  description = "Security group of the API tasks (rules are added by the cache and ecs modules)."
  value       = aws_security_group.service.id
}
