# The image repository: immutable tags, scan on push, KMS encryption, old images expire.

variable "name" {
  description = "Repository name."
  type        = string
}
variable "kms_key_arn" {
  description = "KMS key for the images."
  type        = string
}
variable "keep_images" {
  description = "Tagged images to keep; older ones expire."
  type        = number
  default     = 50
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

resource "aws_ecr_repository" "this" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged images go after a day"
        selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 1 }
        action       = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest tagged images"
        selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = var.keep_images }
        action       = { type = "expire" }
      },
    ]
  })
}

output "repository_url" {
  description = "Registry/repository, the chart's image.repository."
  value       = aws_ecr_repository.this.repository_url
}
output "repository_arn" {
  description = "ARN of the repository (for push permissions)."
  value       = aws_ecr_repository.this.arn
}
