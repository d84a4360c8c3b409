# Names, tags and the address plan of one environment. No provider: `terraform validate` and
# `terraform test` run it anywhere.

terraform {
  required_version = ">= 1.6"
}

variable "name" {
  description = "Product name, the first part of every resource name."
  type        = string
  default     = "emporium"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name: 2-21 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name (dev, staging, prod...)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment: 2-10 lower-case letters or digits, starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "The VPC's address range, a /16 to /20."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR from /16 to /20."
  }
}

variable "zone_count" {
  description = "Availability zones to spread over."
  type        = number
  default     = 3
  validation {
    condition     = var.zone_count >= 2 && var.zone_count <= 4
    error_message = "zone_count must be 2 to 4 (DocumentDB and the ALB need at least two zones)."
  }
}

variable "extra_tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

locals {
  prefix = "${var.name}-${var.environment}"
  # The VPC splits into 4 quarters: private (nodes and pods: 4 subnets, one per zone slot),
  # public (load balancers, NAT), data (DocumentDB, ElastiCache, Amazon MQ), spare.
  quarters     = [for i in range(4) : cidrsubnet(var.vpc_cidr, 2, i)]
  private_cidr = [for z in range(var.zone_count) : cidrsubnet(local.quarters[0], 2, z)]
  public_cidr  = [for z in range(var.zone_count) : cidrsubnet(local.quarters[1], 2, z)]
  data_cidr    = [for z in range(var.zone_count) : cidrsubnet(local.quarters[2], 2, z)]
}

output "prefix" {
  description = "name-environment, the prefix of every resource name."
  value       = local.prefix
}

output "tags" {
  description = "Tags for every resource."
  value = merge(var.extra_tags, {
    "app.kubernetes.io/part-of" = var.name
    Environment                 = var.environment
    ManagedBy                   = "terraform"
  })
}

output "private_subnet_cidrs" {
  description = "One private subnet per zone (nodes, pods)."
  value       = local.private_cidr
}

output "public_subnet_cidrs" {
  description = "One public subnet per zone (load balancers, NAT gateways)."
  value       = local.public_cidr
}

output "data_subnet_cidrs" {
  description = "One isolated subnet per zone (managed stores)."
  value       = local.data_cidr
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = local.prefix
}
