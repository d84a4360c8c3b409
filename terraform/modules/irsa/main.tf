# An IAM role that one Kubernetes service account assumes through the cluster's OIDC provider.

variable "name" {
  description = "Role name."
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
variable "namespace" {
  description = "Namespace of the service account."
  type        = string
}
variable "service_account" {
  description = "Name of the service account."
  type        = string
}
variable "policy_json" {
  description = "Inline policy of the role (empty: none)."
  type        = string
  default     = ""
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

locals {
  issuer = replace(var.oidc_provider_url, "https://", "")
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  count  = var.policy_json == "" ? 0 : 1
  name   = var.name
  role   = aws_iam_role.this.id
  policy = var.policy_json
}

output "role_arn" {
  description = "ARN of the role (the service account's eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.this.arn
}
