output "cluster_name" {
  description = "EKS cluster name."
  value       = module.stack.cluster_name
}
output "ecr_repository_url" {
  description = "Where to push the image."
  value       = module.stack.ecr_repository_url
}
output "release_role_arn" {
  description = "AWS_RELEASE_ROLE_ARN for the release workflow."
  value       = module.stack.release_role_arn
}
output "backends_secret_arn" {
  description = "Secrets Manager secret with the backend URLs."
  value       = module.stack.backends_secret_arn
}
output "namespace" {
  description = "Namespace of the release."
  value       = module.stack.namespace
}
