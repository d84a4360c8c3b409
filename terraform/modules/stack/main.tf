# One whole environment: network, KMS, EKS, ECR, the load balancer controller, DocumentDB,
# Amazon MQ, ElastiCache, the generated secrets and the Emporium release.

data "aws_region" "current" {}
data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first zone_count zones (sorted names) are used, so a new zone in the region changes nothing
  state = "available"
}

module "layout" {
  source      = "../layout"
  environment = var.environment
  vpc_cidr    = var.vpc_cidr
  zone_count  = var.zone_count
  extra_tags  = var.tags
}

locals {
  zones = slice(data.aws_availability_zones.available.names, 0, var.zone_count)
  tags  = module.layout.tags
}

module "kms" {
  source = "../kms"
  prefix = module.layout.prefix
  tags   = local.tags
}

module "network" {
  source               = "../network"
  prefix               = module.layout.prefix
  cluster_name         = module.layout.cluster_name
  vpc_cidr             = var.vpc_cidr
  zones                = local.zones
  private_subnet_cidrs = module.layout.private_subnet_cidrs
  public_subnet_cidrs  = module.layout.public_subnet_cidrs
  data_subnet_cidrs    = module.layout.data_subnet_cidrs
  single_nat_gateway   = var.single_nat_gateway
  kms_key_arn          = module.kms.key_arn
  tags                 = local.tags
}

module "eks" {
  source              = "../eks"
  cluster_name        = module.layout.cluster_name
  kubernetes_version  = var.kubernetes_version
  subnet_ids          = module.network.private_subnet_ids
  public_endpoint     = length(var.public_api_cidrs) > 0
  public_access_cidrs = var.public_api_cidrs
  kms_key_arn         = module.kms.key_arn
  node_instance_types = var.node_instance_types
  node_min            = var.node_min
  node_desired        = var.node_desired
  node_max            = var.node_max
  tags                = local.tags
}

module "ecr" {
  source      = "../ecr"
  name        = "emporium"
  kms_key_arn = module.kms.key_arn
  tags        = local.tags
}

module "ecr_chart" {
  source      = "../ecr"
  name        = "charts/emporium"
  kms_key_arn = module.kms.key_arn
  tags        = local.tags
}

module "github_release" {
  count                = var.github_repository == "" ? 0 : 1
  source               = "../github-release"
  name                 = "${module.layout.prefix}-github-release"
  github_repository    = var.github_repository
  create_oidc_provider = var.create_github_oidc_provider
  repository_arns      = [module.ecr.repository_arn, module.ecr_chart.repository_arn]
  tags                 = local.tags
}

module "pods_role" {
  # The pods make no AWS calls today; policies they come to need are attached here.
  source            = "../irsa"
  name              = "${module.layout.prefix}-pods"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_provider_url = module.eks.oidc_provider_url
  namespace         = "emporium"
  service_account   = "emporium"
  tags              = local.tags
}

module "lb_controller" {
  source            = "../lb-controller"
  cluster_name      = module.eks.cluster_name
  region            = data.aws_region.current.region
  vpc_id            = module.network.vpc_id
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_provider_url = module.eks.oidc_provider_url
  tags              = local.tags
}

module "secrets" {
  source = "../secrets"
}

module "docdb" {
  source                    = "../docdb"
  prefix                    = module.layout.prefix
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.data_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  instance_class            = var.docdb_instance_class
  instance_count            = var.docdb_instances
  deletion_protection       = var.deletion_protection
  master_password           = module.secrets.docdb_password
  kms_key_arn               = module.kms.key_arn
  tags                      = local.tags
}

module "mq" {
  source                    = "../mq"
  prefix                    = module.layout.prefix
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.data_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  cluster_deployment        = var.mq_cluster
  instance_type             = var.mq_instance_type
  password                  = module.secrets.mq_password
  kms_key_arn               = module.kms.key_arn
  tags                      = local.tags
}

module "redis" {
  source                    = "../elasticache"
  prefix                    = module.layout.prefix
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.data_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  node_type                 = var.redis_node_type
  replicas                  = var.redis_replicas
  auth_token                = module.secrets.redis_auth_token
  kms_key_arn               = module.kms.key_arn
  tags                      = local.tags
}

module "emporium" {
  source           = "../emporium"
  prefix           = module.layout.prefix
  environment      = var.environment
  image_repository = module.ecr.repository_url
  image_tag        = var.image_tag
  irsa_role_arn    = module.pods_role.role_arn
  vpc_cidr         = var.vpc_cidr
  host             = var.host
  certificate_arn  = var.certificate_arn
  wafv2_acl_arn    = var.wafv2_acl_arn
  admin_emails     = var.admin_emails
  docdb_endpoint   = module.docdb.endpoint
  docdb_username   = module.docdb.username
  docdb_password   = module.secrets.docdb_password
  docdb_ca_bundle  = file(var.docdb_ca_bundle_file)
  redis_endpoint   = module.redis.primary_endpoint
  redis_auth_token = module.secrets.redis_auth_token
  amqps_endpoint   = module.mq.amqps_endpoint
  mq_username      = module.mq.username
  mq_password      = module.secrets.mq_password
  jwt_secret       = module.secrets.jwt_secret
  cluster_secret   = module.secrets.cluster_secret
  kms_key_arn      = module.kms.key_arn
  manage_release   = var.manage_release
  tags             = local.tags
  depends_on       = [module.lb_controller]
}
