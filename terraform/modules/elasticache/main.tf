# ElastiCache for Redis: the cart cache. A replication group with in-transit and at-rest
# encryption, an AUTH token, automatic failover over several zones when it has replicas.

variable "prefix" {
  description = "Resource name prefix."
  type        = string
}
variable "vpc_id" {
  description = "VPC."
  type        = string
}
variable "subnet_ids" {
  description = "Data subnets."
  type        = list(string)
}
variable "client_security_group_ids" {
  description = "Security groups allowed to connect (the cluster's)."
  type        = list(string)
}
variable "node_type" {
  description = "Cache node type."
  type        = string
}
variable "replicas" {
  description = "Read replicas besides the primary (0: one node, no failover)."
  type        = number
}
variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}
variable "auth_token" {
  description = "AUTH token (from the secrets module)."
  type        = string
  sensitive   = true
}
variable "snapshot_retention_days" {
  description = "Days of daily snapshots (the store keeps every cart, so this is only for warm restarts)."
  type        = number
  default     = 1
}
variable "kms_key_arn" {
  description = "KMS key for data at rest."
  type        = string
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

resource "aws_elasticache_subnet_group" "this" {
  name       = "${var.prefix}-redis"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.prefix}-redis"
  description = "ElastiCache: 6379 (TLS) from the EKS cluster only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count                        = length(var.client_security_group_ids)
  security_group_id            = aws_security_group.this.id
  description                  = "Redis over TLS from the cluster"
  referenced_security_group_id = var.client_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV2_AWS_50:Failover and Multi-AZ are on whenever replicas > 0 (prod); dev runs one node, and the store keeps every cart anyway
  replication_group_id       = "${var.prefix}-carts"
  description                = "${var.prefix}: cart cache"
  engine                     = "redis"
  engine_version             = var.engine_version
  node_type                  = var.node_type
  num_cache_clusters         = 1 + var.replicas
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.this.id]
  automatic_failover_enabled = var.replicas > 0
  multi_az_enabled           = var.replicas > 0
  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  auth_token                 = var.auth_token
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "01:00-02:00"
  maintenance_window         = "sun:05:00-sun:06:00"
  apply_immediately          = false
  tags                       = var.tags
}

output "primary_endpoint" {
  description = "Primary endpoint host."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}
output "port" {
  description = "Port."
  value       = aws_elasticache_replication_group.this.port
}
