# Amazon DocumentDB: the MongoDB-compatible store shared by every pod. TLS enforced, encrypted with
# the environment's key, daily backups, instances over several zones, audit and profiler logs.

variable "prefix" {
  description = "Resource name prefix."
  type        = string
}
variable "vpc_id" {
  description = "VPC."
  type        = string
}
variable "subnet_ids" {
  description = "Data subnets, one per zone."
  type        = list(string)
}
variable "client_security_group_ids" {
  description = "Security groups allowed to connect (the cluster's)."
  type        = list(string)
}
variable "instance_class" {
  description = "Instance class."
  type        = string
}
variable "instance_count" {
  description = "Instances (1 primary + replicas, spread over the zones)."
  type        = number
}
variable "engine_version" {
  description = "DocumentDB engine version."
  type        = string
  default     = "5.0.0"
}
variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time restore window)."
  type        = number
  default     = 7
}
variable "deletion_protection" {
  description = "Refuse to delete the cluster (turn off before a destroy)."
  type        = bool
  default     = true
}
variable "master_username" {
  description = "Administrator user name."
  type        = string
  default     = "emporium"
}
variable "master_password" {
  description = "Administrator password (from the secrets module)."
  type        = string
  sensitive   = true
}
variable "kms_key_arn" {
  description = "KMS key for storage."
  type        = string
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

resource "aws_docdb_subnet_group" "this" {
  name       = "${var.prefix}-docdb"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.prefix}-docdb"
  description = "DocumentDB: port 27017 from the EKS cluster only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count                        = length(var.client_security_group_ids)
  security_group_id            = aws_security_group.this.id
  description                  = "MongoDB protocol from the cluster"
  referenced_security_group_id = var.client_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
}

resource "aws_docdb_cluster_parameter_group" "this" {
  name        = "${var.prefix}-docdb"
  family      = "docdb${join(".", slice(split(".", var.engine_version), 0, 2))}"
  description = "${var.prefix}: TLS required, audit and profiler logs"
  parameter {
    name  = "tls"
    value = "enabled"
  }
  parameter {
    name  = "audit_logs"
    value = "enabled"
  }
  parameter {
    name  = "profiler"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_docdb_cluster" "this" {
  cluster_identifier              = "${var.prefix}-docdb"
  engine                          = "docdb"
  engine_version                  = var.engine_version
  master_username                 = var.master_username
  master_password                 = var.master_password
  db_subnet_group_name            = aws_docdb_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.this.id]
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.this.name
  storage_encrypted               = true
  kms_key_id                      = var.kms_key_arn
  backup_retention_period         = var.backup_retention_days
  preferred_backup_window         = "02:00-03:00"
  preferred_maintenance_window    = "sun:03:30-sun:04:30"
  deletion_protection             = var.deletion_protection
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${var.prefix}-docdb-final"
  enabled_cloudwatch_logs_exports = ["audit", "profiler"]
  tags                            = var.tags
}

resource "aws_docdb_cluster_instance" "this" {
  count                      = var.instance_count
  identifier                 = "${var.prefix}-docdb-${count.index}"
  cluster_identifier         = aws_docdb_cluster.this.id
  instance_class             = var.instance_class
  auto_minor_version_upgrade = true
  tags                       = var.tags
}

output "endpoint" {
  description = "Cluster (writer) endpoint."
  value       = aws_docdb_cluster.this.endpoint
}
output "port" {
  description = "Port."
  value       = aws_docdb_cluster.this.port
}
output "username" {
  description = "Administrator user name."
  value       = aws_docdb_cluster.this.master_username
}
