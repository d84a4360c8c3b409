# Amazon MQ for RabbitMQ: order events. Private (no public endpoint), encrypted with the
# environment's key, logs to CloudWatch, a three-node cluster over three zones in production.

variable "prefix" {
  description = "Resource name prefix."
  type        = string
}
variable "vpc_id" {
  description = "VPC."
  type        = string
}
variable "subnet_ids" {
  description = "Data subnets (one is used by a single instance, three by a cluster)."
  type        = list(string)
}
variable "client_security_group_ids" {
  description = "Security groups allowed to connect (the cluster's)."
  type        = list(string)
}
variable "cluster_deployment" {
  description = "CLUSTER_MULTI_AZ (three nodes) instead of SINGLE_INSTANCE."
  type        = bool
}
variable "instance_type" {
  description = "Broker instance type."
  type        = string
}
variable "engine_version" {
  description = "RabbitMQ engine version."
  type        = string
  default     = "3.13"
}
variable "username" {
  description = "Broker user."
  type        = string
  default     = "emporium"
}
variable "password" {
  description = "Broker password (from the secrets module)."
  type        = string
  sensitive   = true
}
variable "kms_key_arn" {
  description = "KMS key for the broker's storage."
  type        = string
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

resource "aws_security_group" "this" {
  name        = "${var.prefix}-mq"
  description = "Amazon MQ: AMQPS 5671 from the EKS cluster only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count                        = length(var.client_security_group_ids)
  security_group_id            = aws_security_group.this.id
  description                  = "AMQPS from the cluster"
  referenced_security_group_id = var.client_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = 5671
  to_port                      = 5671
}

resource "aws_mq_broker" "this" {
  broker_name                = "${var.prefix}-events"
  engine_type                = "RabbitMQ"
  engine_version             = var.engine_version
  host_instance_type         = var.instance_type
  deployment_mode            = var.cluster_deployment ? "CLUSTER_MULTI_AZ" : "SINGLE_INSTANCE"
  subnet_ids                 = var.cluster_deployment ? var.subnet_ids : [var.subnet_ids[0]]
  security_groups            = [aws_security_group.this.id]
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  apply_immediately          = false

  encryption_options {
    use_aws_owned_key = false
    kms_key_id        = var.kms_key_arn
  }
  logs {
    general = true
  }
  maintenance_window_start_time {
    day_of_week = "SUNDAY"
    time_of_day = "04:00"
    time_zone   = "UTC"
  }
  user {
    username = var.username
    password = var.password
  }
  tags = var.tags
}

output "amqps_endpoint" {
  description = "amqps://host:5671 of the broker."
  value       = aws_mq_broker.this.instances[0].endpoints[0]
}
output "username" {
  description = "Broker user."
  value       = var.username
}
