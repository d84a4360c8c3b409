# The Emporium release: the backends' URLs (with credentials) in Secrets Manager and in the
# release's Kubernetes Secret, the DocumentDB CA bundle as a ConfigMap, and the chart
# charts/emporium installed with the environment's values file plus this account's values.

variable "prefix" {
  description = "Resource name prefix."
  type        = string
}
variable "environment" {
  description = "dev or prod: picks charts/emporium/values-<environment>.yaml."
  type        = string
}
variable "namespace" {
  description = "Namespace of the release."
  type        = string
  default     = "emporium"
}
variable "image_repository" {
  description = "ECR repository URL."
  type        = string
}
variable "image_tag" {
  description = "Image tag to run (immutable in ECR)."
  type        = string
}
variable "irsa_role_arn" {
  description = "IAM role of the pods' service account."
  type        = string
}
variable "vpc_cidr" {
  description = "VPC range: the ALB's targets are reached from it (NetworkPolicy)."
  type        = string
}
variable "host" {
  description = "Host name of the store (empty: any)."
  type        = string
  default     = ""
}
variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the ALB (empty: HTTP only)."
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
variable "docdb_endpoint" {
  description = "DocumentDB writer endpoint."
  type        = string
}
variable "docdb_username" {
  description = "DocumentDB user."
  type        = string
}
variable "docdb_password" {
  description = "DocumentDB password."
  type        = string
  sensitive   = true
}
variable "docdb_ca_bundle" {
  description = "PEM of Amazon's RDS/DocumentDB global CA bundle."
  type        = string
}
variable "redis_endpoint" {
  description = "ElastiCache primary endpoint."
  type        = string
}
variable "redis_auth_token" {
  description = "ElastiCache AUTH token."
  type        = string
  sensitive   = true
}
variable "amqps_endpoint" {
  description = "Amazon MQ amqps://host:5671 endpoint."
  type        = string
}
variable "mq_username" {
  description = "Amazon MQ user."
  type        = string
}
variable "mq_password" {
  description = "Amazon MQ password."
  type        = string
  sensitive   = true
}
variable "jwt_secret" {
  description = "EMPORIUM_JWT_SECRET."
  type        = string
  sensitive   = true
}
variable "cluster_secret" {
  description = "EMPORIUM_CLUSTER_SECRET."
  type        = string
  sensitive   = true
}
variable "kms_key_arn" {
  description = "KMS key for the Secrets Manager secret."
  type        = string
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

locals {
  secret_name = "emporium-backends"
  ca_path     = "/etc/emporium/ca/global-bundle.pem"
  values = {
    "jwt-secret"     = var.jwt_secret
    "cluster-secret" = var.cluster_secret
    # DocumentDB: TLS with Amazon's CA bundle, a replica set without retryable writes.
    "store-url" = "mongodb://${var.docdb_username}:${var.docdb_password}@${var.docdb_endpoint}:27017/emporium?tls=true&tlsCAFile=${local.ca_path}&replicaSet=rs0&readPreference=primary&retryWrites=false"
    "redis-url" = "rediss://:${var.redis_auth_token}@${var.redis_endpoint}:6379/0"
    "amqp-url"  = "${replace(var.amqps_endpoint, "amqps://", "amqps://${var.mq_username}:${var.mq_password}@")}/%2f"
  }
}

resource "aws_secretsmanager_secret" "backends" {
  name                    = "${var.prefix}/emporium-backends"
  description             = "Emporium: JWT and cluster secrets, backend URLs with credentials"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "backends" {
  secret_id     = aws_secretsmanager_secret.backends.id
  secret_string = jsonencode(local.values)
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = var.namespace
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

resource "kubernetes_secret_v1" "backends" {
  metadata {
    name      = local.secret_name
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = local.values
  type = "Opaque"
}

resource "kubernetes_config_map_v1" "ca" {
  metadata {
    name      = "emporium-store-ca"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = {
    "global-bundle.pem" = var.docdb_ca_bundle
  }
}

resource "helm_release" "emporium" {
  name      = "emporium"
  namespace = kubernetes_namespace_v1.this.metadata[0].name
  chart     = "${path.module}/../../../charts/emporium"
  values = [
    file("${path.module}/../../../charts/emporium/values-${var.environment}.yaml"),
    yamlencode({
      image          = { repository = var.image_repository, tag = var.image_tag }
      serviceAccount = { irsaRoleArn = var.irsa_role_arn }
      secrets        = { existingSecret = local.secret_name }
      store          = { kind = "mongodb", caConfigMap = kubernetes_config_map_v1.ca.metadata[0].name }
      config         = { adminEmails = var.admin_emails }
      networkPolicy  = { apiFromCidrs = [var.vpc_cidr] }
      ingress = {
        enabled        = true
        host           = var.host
        certificateArn = var.certificate_arn
        wafv2AclArn    = var.wafv2_acl_arn
      }
    }),
  ]
  # A changed Secret rolls the pods (the chart's checksum covers only its own values).
  set = [{
    name  = "podAnnotations.checksum/backends"
    value = sha256(jsonencode(local.values))
  }]
  wait    = true
  timeout = 900
}

output "secret_arn" {
  description = "Secrets Manager secret with the backend URLs."
  value       = aws_secretsmanager_secret.backends.arn
}
output "namespace" {
  description = "Namespace of the release."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}
