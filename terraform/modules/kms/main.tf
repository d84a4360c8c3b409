# One customer-managed KMS key per environment: EKS secrets, logs, ECR, DocumentDB, ElastiCache,
# Amazon MQ and Secrets Manager are encrypted with it.

variable "prefix" {
  description = "Resource name prefix."
  type        = string
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "key" {
  # A key policy's resource "*" is the key itself; the account root delegating to IAM is the AWS default.
  #checkov:skip=CKV_AWS_111:A key policy applies to its own key only; "*" names that key
  #checkov:skip=CKV_AWS_109:The account root administers the key, the AWS default key policy
  #checkov:skip=CKV_AWS_356:A key policy applies to its own key only; "*" names that key
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.prefix}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.prefix}"
  target_key_id = aws_kms_key.this.key_id
}

output "key_arn" {
  description = "ARN of the key."
  value       = aws_kms_key.this.arn
}
