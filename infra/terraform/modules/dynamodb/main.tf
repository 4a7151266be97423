# One table for ratings and books (the design's single-table layout):
#   rating  pk = "USER#{user_id}"      sk = "BOOK#{book_id:08d}"
#   book    pk = "BOOK#{book_id:08d}"  sk = "META"
# A user's ratings are one Query on pk; books are BatchGetItem on (pk, "META").
resource "aws_dynamodb_table" "main" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST" # traffic is spiky (nightly warm, snapshot scans); no capacity to tune
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}
