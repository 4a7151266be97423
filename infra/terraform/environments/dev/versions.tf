terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State holds the generated Redis AUTH token and JWT secret, so it lives in
  # an encrypted S3 bucket, never on a laptop. Supplied at init time:
  #   terraform init -backend-config=bucket=... -backend-config=key=book-recommendation/dev.tfstate \
  #     -backend-config=region=... -backend-config=encrypt=true -backend-config=use_lockfile=true
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = var.project_name
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
