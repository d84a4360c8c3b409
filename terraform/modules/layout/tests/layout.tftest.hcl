# terraform test: the address plan and names, without any provider.

run "prod_plan_over_three_zones" {
  command = plan
  variables {
    environment = "prod"
    vpc_cidr    = "10.40.0.0/16"
  }
  assert {
    condition     = output.private_subnet_cidrs == ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"]
    error_message = "private subnets: ${jsonencode(output.private_subnet_cidrs)}"
  }
  assert {
    condition     = output.public_subnet_cidrs == ["10.40.64.0/20", "10.40.80.0/20", "10.40.96.0/20"]
    error_message = "public subnets: ${jsonencode(output.public_subnet_cidrs)}"
  }
  assert {
    condition     = output.data_subnet_cidrs == ["10.40.128.0/20", "10.40.144.0/20", "10.40.160.0/20"]
    error_message = "data subnets: ${jsonencode(output.data_subnet_cidrs)}"
  }
  assert {
    condition     = output.prefix == "emporium-prod" && output.tags.Environment == "prod"
    error_message = "names: ${output.prefix}"
  }
}

run "no_two_subnets_overlap" {
  command = plan
  variables {
    environment = "dev"
    vpc_cidr    = "10.20.0.0/20"
    zone_count  = 4
  }
  assert {
    condition     = length(distinct(concat(output.private_subnet_cidrs, output.public_subnet_cidrs, output.data_subnet_cidrs))) == 12
    error_message = "subnets repeat"
  }
  assert {
    condition     = alltrue([for c in concat(output.private_subnet_cidrs, output.public_subnet_cidrs, output.data_subnet_cidrs) : endswith(c, "/24")])
    error_message = "a /20 VPC gives /24 subnets"
  }
}

run "rejects_a_bad_cidr" {
  command = plan
  variables {
    environment = "dev"
    vpc_cidr    = "10.0.0.0/24"
  }
  expect_failures = [var.vpc_cidr]
}

run "rejects_one_zone" {
  command = plan
  variables {
    environment = "dev"
    vpc_cidr    = "10.0.0.0/16"
    zone_count  = 1
  }
  expect_failures = [var.zone_count]
}
