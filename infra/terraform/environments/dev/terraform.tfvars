project_name = "book-recommendation"
environment  = "dev"
node_type    = "cache.t3.micro"

# Supplied per deployment, not committed:
#   -var image_tag=$(git rev-parse --short HEAD)
#   -var certificate_arn=<ACM certificate of the API's domain>
