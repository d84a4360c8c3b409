# The role .github/workflows/release.yml assumes through GitHub's OIDC identity (no stored AWS
# keys): push the image and the chart to their ECR repositories, nothing else.

variable "name" {
  description = "Role name."
  type        = string
}
variable "github_repository" {
  description = "owner/name of the GitHub repository whose tag pushes may release."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be one owner/name, without wildcards."
  }
}
variable "create_oidc_provider" {
  description = "Create the account's token.actions.githubusercontent.com provider (false if it exists)."
  type        = bool
  default     = true
}
variable "repository_arns" {
  description = "ECR repositories the role may push to."
  type        = list(string)
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  provider_arn = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  tags           = var.tags
}

data "aws_iam_policy_document" "assume" {
  #checkov:skip=CKV_AWS_358:The subject is repo:<owner>/<name>:ref:refs/tags/v* for one repository (the variable's validation refuses wildcards); checkov cannot see through the variable
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:ref:refs/tags/v*"]
    }
  }
}

data "aws_iam_policy_document" "push" {
  statement {
    sid       = "Login"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid = "Push"
    actions = [
      "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
      "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload",
      "ecr:PutImage", "ecr:UploadLayerPart",
    ]
    resources = var.repository_arns
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "push" {
  name   = "push-to-ecr"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.push.json
}

output "role_arn" {
  description = "The workflow's AWS_RELEASE_ROLE_ARN."
  value       = aws_iam_role.this.arn
}
