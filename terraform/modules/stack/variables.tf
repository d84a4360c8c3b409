variable "environment" {
  description = "dev or prod (also picks the chart's values file)."
  type        = string
}
variable "vpc_cidr" {
  description = "VPC range, /16 to /20."
  type        = string
}
variable "zone_count" {
  description = "Availability zones."
  type        = number
  default     = 3
}
variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per zone."
  type        = bool
}
variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
}
variable "public_api_cidrs" {
  description = "CIDRs allowed to reach the EKS API publicly (empty: private endpoint only)."
  type        = list(string)
  default     = []
}
variable "node_instance_types" {
  description = "EKS node instance types."
  type        = list(string)
}
variable "node_min" {
  description = "Fewest nodes."
  type        = number
}
variable "node_desired" {
  description = "Nodes at creation."
  type        = number
}
variable "node_max" {
  description = "Most nodes."
  type        = number
}
variable "docdb_instance_class" {
  description = "DocumentDB instance class."
  type        = string
}
variable "docdb_instances" {
  description = "DocumentDB instances."
  type        = number
}
variable "docdb_ca_bundle_file" {
  description = "Path of Amazon's global CA bundle (global-bundle.pem) for TLS to DocumentDB."
  type        = string
}
variable "deletion_protection" {
  description = "Protect the store from deletion."
  type        = bool
  default     = true
}
variable "mq_instance_type" {
  description = "Amazon MQ instance type."
  type        = string
}
variable "mq_cluster" {
  description = "Three-node Amazon MQ cluster instead of one instance."
  type        = bool
}
variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
}
variable "redis_replicas" {
  description = "ElastiCache replicas besides the primary."
  type        = number
}
variable "image_tag" {
  description = "Emporium image tag in ECR."
  type        = string
}
variable "host" {
  description = "Host name of the store (empty: any)."
  type        = string
  default     = ""
}
variable "certificate_arn" {
  description = "ACM certificate for the ALB (empty: HTTP only)."
  type        = string
  default     = ""
}
variable "wafv2_acl_arn" {
  description = "WAFv2 web ACL for the ALB (empty: none)."
  type        = string
  default     = ""
}
variable "admin_emails" {
  description = "Comma-separated admin accounts."
  type        = string
  default     = ""
}
variable "manage_release" {
  description = "Terraform installs the chart (false: Argo CD does, from deploy/argocd)."
  type        = bool
  default     = true
}
variable "github_repository" {
  description = "owner/name of the GitHub repository allowed to release to ECR (empty: no release role)."
  type        = string
  default     = ""
}
variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when another stack has)."
  type        = bool
  default     = true
}
variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
