# The generated secrets: the pods' JWT and cluster secrets and the backends' passwords. Letters and
# digits only, so they go into URLs without escaping. Stored by the emporium module in Secrets
# Manager and in the release's Kubernetes Secret.

locals {
  secrets = {
    jwt              = 48
    cluster          = 48
    docdb_password   = 40
    mq_password      = 40
    redis_auth_token = 64
  }
}

resource "random_password" "this" {
  for_each = local.secrets
  length   = each.value
  special  = false
}

output "jwt_secret" {
  description = "HS256 secret of the tokens (EMPORIUM_JWT_SECRET)."
  value       = random_password.this["jwt"].result
  sensitive   = true
}
output "cluster_secret" {
  description = "Secret shared by the pods (EMPORIUM_CLUSTER_SECRET)."
  value       = random_password.this["cluster"].result
  sensitive   = true
}
output "docdb_password" {
  description = "DocumentDB administrator password."
  value       = random_password.this["docdb_password"].result
  sensitive   = true
}
output "mq_password" {
  description = "Amazon MQ user password."
  value       = random_password.this["mq_password"].result
  sensitive   = true
}
output "redis_auth_token" {
  description = "ElastiCache AUTH token."
  value       = random_password.this["redis_auth_token"].result
  sensitive   = true
}
