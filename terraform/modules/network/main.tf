# VPC over several zones: public subnets (ALB, NAT), private subnets (EKS nodes and pods) and
# isolated data subnets (DocumentDB, ElastiCache, Amazon MQ), NAT per zone or one shared, flow logs.

variable "prefix" {
  description = "Resource name prefix (layout module)."
  type        = string
}
variable "cluster_name" {
  description = "EKS cluster name, for the subnet discovery tags of the load balancer controller."
  type        = string
}
variable "vpc_cidr" {
  description = "VPC address range."
  type        = string
}
variable "zones" {
  description = "Availability zone names, one per subnet of each tier."
  type        = list(string)
}
variable "private_subnet_cidrs" {
  description = "Private subnets, one per zone."
  type        = list(string)
}
variable "public_subnet_cidrs" {
  description = "Public subnets, one per zone."
  type        = list(string)
}
variable "data_subnet_cidrs" {
  description = "Data subnets, one per zone."
  type        = list(string)
}
variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, one zone's outage cuts egress) instead of one per zone."
  type        = bool
  default     = false
}
variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs."
  type        = number
  default     = 365
}
variable "kms_key_arn" {
  description = "KMS key for the flow log group."
  type        = string
}
variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = var.prefix })
}

# Nothing may use the default security group.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.prefix}-default-unused" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = var.prefix })
}

resource "aws_subnet" "public" {
  count             = length(var.zones)
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.public_subnet_cidrs[count.index]
  availability_zone = var.zones[count.index]
  tags = merge(var.tags, {
    Name                                        = "${var.prefix}-public-${var.zones[count.index]}"
    "kubernetes.io/role/elb"                    = "1"
    "kubernetes.io/cluster/${var.cluster_name}" = "shared"
  })
}

resource "aws_subnet" "private" {
  count             = length(var.zones)
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.private_subnet_cidrs[count.index]
  availability_zone = var.zones[count.index]
  tags = merge(var.tags, {
    Name                                        = "${var.prefix}-private-${var.zones[count.index]}"
    "kubernetes.io/role/internal-elb"           = "1"
    "kubernetes.io/cluster/${var.cluster_name}" = "shared"
  })
}

resource "aws_subnet" "data" {
  count             = length(var.zones)
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.data_subnet_cidrs[count.index]
  availability_zone = var.zones[count.index]
  tags              = merge(var.tags, { Name = "${var.prefix}-data-${var.zones[count.index]}" })
}

resource "aws_eip" "nat" {
  count  = var.single_nat_gateway ? 1 : length(var.zones)
  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.prefix}-nat-${count.index}" })
}

resource "aws_nat_gateway" "this" {
  count         = length(aws_eip.nat)
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = merge(var.tags, { Name = "${var.prefix}-nat-${count.index}" })
  depends_on    = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
  tags = merge(var.tags, { Name = "${var.prefix}-public" })
}

resource "aws_route_table_association" "public" {
  count          = length(var.zones)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  count  = length(var.zones)
  vpc_id = aws_vpc.this.id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this[var.single_nat_gateway ? 0 : count.index].id
  }
  tags = merge(var.tags, { Name = "${var.prefix}-private-${var.zones[count.index]}" })
}

resource "aws_route_table_association" "private" {
  count          = length(var.zones)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# Data subnets have no route out of the VPC.
resource "aws_route_table" "data" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.prefix}-data" })
}

resource "aws_route_table_association" "data" {
  count          = length(var.zones)
  subnet_id      = aws_subnet.data[count.index].id
  route_table_id = aws_route_table.data.id
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/aws/vpc/${var.prefix}/flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "flow_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "flow_write" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow.arn}:*"]
  }
}

resource "aws_iam_role" "flow" {
  name               = "${var.prefix}-vpc-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "flow" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow.id
  policy = data.aws_iam_policy_document.flow_write.json
}

resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow.arn
  iam_role_arn    = aws_iam_role.flow.arn
  tags            = var.tags
}

output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}
output "vpc_cidr" {
  description = "VPC address range."
  value       = aws_vpc.this.cidr_block
}
output "private_subnet_ids" {
  description = "Private subnets (nodes, pods)."
  value       = aws_subnet.private[*].id
}
output "public_subnet_ids" {
  description = "Public subnets (load balancers)."
  value       = aws_subnet.public[*].id
}
output "data_subnet_ids" {
  description = "Data subnets (managed stores)."
  value       = aws_subnet.data[*].id
}
