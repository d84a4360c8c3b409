# Production: three zones, a NAT gateway per zone, three DocumentDB instances, a three-node
# Amazon MQ cluster, Redis with two replicas, HTTPS on the ALB with an optional WAF.

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}
variable "image_tag" {
  description = "Emporium image tag in ECR."
  type        = string
}
variable "host" {
  description = "Host name of the store, e.g. shop.example.com."
  type        = string
}
variable "certificate_arn" {
  description = "ACM certificate for the host, in the same region."
  type        = string
}
variable "wafv2_acl_arn" {
  description = "WAFv2 web ACL (empty: none)."
  type        = string
  default     = ""
}
variable "admin_emails" {
  description = "Comma-separated admin accounts."
  type        = string
  default     = ""
}
variable "github_repository" {
  description = "owner/name of the GitHub repository allowed to push images (empty: none)."
  type        = string
  default     = ""
}
variable "public_api_cidrs" {
  description = "Your office/VPN CIDRs allowed to reach the EKS API (empty: private only)."
  type        = list(string)
  default     = []
}

module "stack" {
  source               = "../../modules/stack"
  environment          = "prod"
  kubernetes_version   = "1.33"
  vpc_cidr             = "10.40.0.0/16"
  zone_count           = 3
  single_nat_gateway   = false
  public_api_cidrs     = var.public_api_cidrs
  node_instance_types  = ["m7i.xlarge"]
  node_min             = 3
  node_desired         = 3
  node_max             = 9
  docdb_instance_class = "db.r6g.large"
  docdb_instances      = 3
  docdb_ca_bundle_file = "${path.root}/global-bundle.pem"
  deletion_protection  = true
  mq_instance_type     = "mq.m5.large"
  mq_cluster           = true
  redis_node_type      = "cache.r7g.large"
  redis_replicas       = 2
  image_tag            = var.image_tag
  github_repository    = var.github_repository
  # One GitHub OIDC provider per account: dev creates it (same account assumed; set true otherwise).
  create_github_oidc_provider = false
  host                        = var.host
  certificate_arn             = var.certificate_arn
  wafv2_acl_arn               = var.wafv2_acl_arn
  admin_emails                = var.admin_emails
}
