output "table_name" {
  description = "Name of the table (DYNAMODB_TABLE)."
  value       = aws_dynamodb_table.main.name
}

output "table_arn" {
  description = "ARN of the table, for least-privilege IAM policies."
  value       = aws_dynamodb_table.main.arn
}
