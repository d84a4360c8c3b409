# Development: two zones' worth of everything at the smallest sizes, one NAT gateway, one
# DocumentDB instance, a single-instance broker, Redis without replicas.

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}
variable "image_tag" {
  description = "Emporium image tag in ECR."
  type        = string
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
  environment          = "dev"
  kubernetes_version   = "1.33"
  vpc_cidr             = "10.20.0.0/16"
  zone_count           = 2
  single_nat_gateway   = true
  public_api_cidrs     = var.public_api_cidrs
  node_instance_types  = ["t3.large"]
  node_min             = 2
  node_desired         = 2
  node_max             = 4
  docdb_instance_class = "db.t4g.medium"
  docdb_instances      = 1
  docdb_ca_bundle_file = "${path.root}/global-bundle.pem"
  deletion_protection  = false
  mq_instance_type     = "mq.t3.micro"
  mq_cluster           = false
  redis_node_type      = "cache.t4g.micro"
  redis_replicas       = 0
  image_tag            = var.image_tag
  github_repository    = var.github_repository
  admin_emails         = var.admin_emails
}
