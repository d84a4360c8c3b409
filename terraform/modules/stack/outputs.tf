output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}
output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.eks.endpoint
}
output "cluster_certificate_authority" {
  description = "EKS API CA (base64)."
  value       = module.eks.certificate_authority
}
output "ecr_repository_url" {
  description = "Where to push the image."
  value       = module.ecr.repository_url
}
output "release_role_arn" {
  description = "Role for .github/workflows/release.yml (AWS_RELEASE_ROLE_ARN), when github_repository is set."
  value       = one(module.github_release[*].role_arn)
}
output "backends_secret_arn" {
  description = "Secrets Manager secret with the JWT/cluster secrets and backend URLs."
  value       = module.emporium.secret_arn
}
output "docdb_endpoint" {
  description = "DocumentDB writer endpoint."
  value       = module.docdb.endpoint
}
output "namespace" {
  description = "Namespace of the release."
  value       = module.emporium.namespace
}
