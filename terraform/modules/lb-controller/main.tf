# The AWS Load Balancer Controller (turns the chart's Ingress into an ALB), with its IRSA role.

variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
}
variable "region" {
  description = "AWS region."
  type        = string
}
variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}
variable "oidc_provider_arn" {
  description = "The cluster's OIDC provider ARN."
  type        = string
}
variable "oidc_provider_url" {
  description = "The cluster's OIDC issuer URL."
  type        = string
}
variable "chart_version" {
  description = "Version of the eks-charts aws-load-balancer-controller chart."
  type        = string
  default     = "1.14.0"
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

module "role" {
  source            = "../irsa"
  name              = "${var.cluster_name}-lb-controller"
  oidc_provider_arn = var.oidc_provider_arn
  oidc_provider_url = var.oidc_provider_url
  namespace         = "kube-system"
  service_account   = "aws-load-balancer-controller"
  policy_json       = file("${path.module}/iam-policy.json")
  tags              = var.tags
}

resource "helm_release" "this" {
  name       = "aws-load-balancer-controller"
  namespace  = "kube-system"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = var.chart_version
  wait       = true
  values = [yamlencode({
    clusterName  = var.cluster_name
    region       = var.region
    vpcId        = var.vpc_id
    replicaCount = 2
    serviceAccount = {
      create      = true
      name        = "aws-load-balancer-controller"
      annotations = { "eks.amazonaws.com/role-arn" = module.role.role_arn }
    }
    enableServiceMutatorWebhook = false
  })]
}

output "release_status" {
  description = "Status of the controller's release."
  value       = helm_release.this.status
}
