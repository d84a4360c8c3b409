#!/usr/bin/env bash
# Offline checks of the deployment files: the container image, the Helm chart, the Terraform, the
# GitHub workflows and the Argo CD Application. Installs its tools first (scripts/deploy-tools.sh,
# git-ignored dirs), then runs each check on the real files and once on a deliberately broken
# copy in a temp dir, where it must fail: a check that cannot fail would be reported as a failure.
# The checkers run without a network (unshare -n) where the machine allows it; the binary test
# runs in its own network namespace, on loopback only.
#   bash scripts/check-deploy.sh            everything
#   SKIP_BINARY=1 bash scripts/check-deploy.sh   without building and starting the binary
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)

bash scripts/deploy-tools.sh
HELM=$ROOT/.tools/bin/helm
PY=$ROOT/.venv-deploy/bin/python
VBIN=$ROOT/.venv-deploy/bin
CHECKOV=$ROOT/.venv-checkov/bin/checkov
SCHEMAS=$ROOT/.tools/schemas
CHART=charts/emporium
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

OFFLINE=()
if unshare -n true 2>/dev/null; then OFFLINE=(unshare -n); fi

passed=0 failed=0 failures=()
# ok NAME CMD...: CMD must succeed.  broken NAME CMD...: CMD must fail (the negative test).
ok() {
  local name=$1; shift
  if "$@" >"$WORK/out" 2>&1; then
    passed=$((passed + 1)); printf '   ok      %s\n' "$name"
  else
    failed=$((failed + 1)); failures+=("$name"); printf '   FAILED  %s\n' "$name"; tail -n 40 "$WORK/out" | sed 's/^/           /'
  fi
}
broken() {
  local name=$1; shift
  if "$@" >"$WORK/out" 2>&1; then
    failed=$((failed + 1)); failures+=("$name (a broken copy passed)")
    printf '   FAILED  %s: the broken copy passed\n' "$name"; tail -n 20 "$WORK/out" | sed 's/^/           /'
  else
    passed=$((passed + 1)); printf '   ok      %s (rejected)\n' "$name"
  fi
}
section() { printf '\n== %s\n' "$*"; }
# copy SRC: a copy of a file or tree in the temp dir; prints its path.
copy() { local dst; dst=$(mktemp -d "$WORK/copy.XXXXXX")/$(basename "$1"); cp -r "$1" "$dst"; echo "$dst"; }

render() { # render OUT [helm template args...]
  local out=$1; shift
  "${OFFLINE[@]}" "$HELM" template emporium "$@" --namespace emporium >"$out"
}
# kubernetes-validate --strict against 1.31; a kind without a schema fails unless it is a CRD the
# chart may render (ServiceMonitor).
kvalidate() {
  "${OFFLINE[@]}" "$VBIN/kubernetes-validate" --strict -k 1.31.0 "$1" >"$WORK/kv" 2>&1 || { cat "$WORK/kv"; return 1; }
  if grep "Couldn't find schema" "$WORK/kv" | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1"; then return 1; fi
  grep -c "passed for resource" "$WORK/kv"
}
checkov_k8s() { "${OFFLINE[@]}" "$CHECKOV" --framework kubernetes --quiet --compact --skip-download -d "$1"; }
checkov_tf() { "${OFFLINE[@]}" "$CHECKOV" --framework terraform --quiet --compact --skip-download -d "$1"; }
checkov_docker() { "${OFFLINE[@]}" "$CHECKOV" --framework dockerfile --quiet --compact --skip-download -f "$1"; }

# ---------------------------------------------------------------------------------------------
section "container image"
ok "hadolint Dockerfile" "$VBIN/hadolint" Dockerfile
bad=$(copy Dockerfile); sed -i 's/^USER 65532:65532$/USER root/' "$bad"
broken "hadolint on a Dockerfile that runs as root" "$VBIN/hadolint" "$bad"
ok "checkov Dockerfile" checkov_docker Dockerfile
bad=$(copy Dockerfile); sed -i '/^USER /d' "$bad"
broken "checkov on a Dockerfile without USER" checkov_docker "$bad"

# ---------------------------------------------------------------------------------------------
section "helm chart"
ok "helm lint --strict" "${OFFLINE[@]}" "$HELM" lint --strict "$CHART"
bad=$(copy "$CHART"); echo '  broken: {{ .Values.image.nothing.here }}' >>"$bad/templates/configmap.yaml"
broken "helm lint --strict on a template reading a missing value" "${OFFLINE[@]}" "$HELM" lint --strict "$bad"

ok "helm template (default values)" render "$WORK/default.yaml" "$CHART"
ok "helm template (values-dev.yaml)" render "$WORK/dev.yaml" "$CHART" -f "$CHART/values-dev.yaml" -f scripts/deploy/fixtures/aws-outputs.yaml
ok "helm template (values-prod.yaml)" render "$WORK/prod.yaml" "$CHART" -f "$CHART/values-prod.yaml" -f scripts/deploy/fixtures/aws-outputs.yaml
ok "helm template (values-prod.yaml with notify enabled)" render "$WORK/notify.yaml" "$CHART" -f "$CHART/values-prod.yaml" -f scripts/deploy/fixtures/aws-outputs.yaml -f scripts/deploy/fixtures/notify.yaml
ok "notify off by default: no consumer rendered" bash -c '! grep -q "args: \[\"notify\"\]" "$1"' _ "$WORK/default.yaml"
ok "notify enabled: its Deployment and Secret rendered" bash -c 'grep -q "args: \[\"notify\"\]" "$1" && grep -q "name: emporium-notify$" "$1"' _ "$WORK/notify.yaml"
broken "values schema: unknown store kind" render "$WORK/x.yaml" "$CHART" --set store.kind=postgres
broken "values schema: misspelled key" render "$WORK/x.yaml" "$CHART" --set config.shardz=8
broken "chart rule: 3 pods without cluster mode" render "$WORK/x.yaml" "$CHART" --set replicaCount=3
broken "chart rule: grace period shorter than drain + handoff" render "$WORK/x.yaml" "$CHART" --set shutdown.terminationGracePeriodSeconds=30
broken "chart rule: notify without the broker" render "$WORK/x.yaml" "$CHART" -f scripts/deploy/fixtures/notify.yaml
broken "values schema: notify SMTP URL that is not smtp:// or smtps://" render "$WORK/x.yaml" "$CHART" -f "$CHART/values-prod.yaml" -f scripts/deploy/fixtures/aws-outputs.yaml -f scripts/deploy/fixtures/notify.yaml --set notify.secrets.smtpUrl=http://mail

for v in default dev prod notify; do
  ok "kubernetes-validate --strict 1.31 ($v)" kvalidate "$WORK/$v.yaml"
done
bad=$(copy "$WORK/prod.yaml"); sed -i 's/podManagementPolicy:/podManagmentPolicy:/' "$bad"
broken "kubernetes-validate on a misspelled StatefulSet field" kvalidate "$bad"

mkdir -p "$WORK/rendered"; cp "$WORK"/{default,dev,prod,notify}.yaml "$WORK/rendered/"
ok "checkov on the rendered chart (default, dev, prod, prod with notify)" checkov_k8s "$WORK/rendered"
mkdir -p "$WORK/rendered-bad"; sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$WORK/prod.yaml" >"$WORK/rendered-bad/prod.yaml"
broken "checkov on a rendering with a writable root filesystem" checkov_k8s "$WORK/rendered-bad"

# ---------------------------------------------------------------------------------------------
section "terraform"
ok "provider schemas: every resource/data/provider block" "$PY" scripts/deploy/tf_schema_check.py "$SCHEMAS" terraform
bad=$(copy terraform/modules/eks); sed -i 's/^  role_arn  *= aws_iam_role.cluster.arn/  role_arm = aws_iam_role.cluster.arn/' "$bad/main.tf"
broken "provider schemas on a misspelled argument" "$PY" scripts/deploy/tf_schema_check.py "$SCHEMAS" "$bad"
bad=$(copy terraform/modules/docdb); sed -i '/^  cluster_identifier  *= aws_docdb_cluster.this.id$/d' "$bad/main.tf"
broken "provider schemas on a missing required argument" "$PY" scripts/deploy/tf_schema_check.py "$SCHEMAS" "$bad"
bad=$(copy terraform/modules/ecr); sed -i 's/^  image_scanning_configuration {/  image_scaning_configuration {/' "$bad/main.tf"
broken "provider schemas on a misspelled block" "$PY" scripts/deploy/tf_schema_check.py "$SCHEMAS" "$bad"

ok "checkov on terraform/" checkov_tf terraform
bad=$(copy terraform); sed -i 's/enable_key_rotation     = true/enable_key_rotation     = false/' "$bad/modules/kms/main.tf"
broken "checkov on a KMS key without rotation" checkov_tf "$bad"

if command -v terraform >/dev/null 2>&1; then
  # A CLI configuration whose only provider source is an empty mirror: nothing is downloaded.
  mkdir -p "$WORK/tf-mirror"
  printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["*/*/*"]\n  }\n}\n' "$WORK/tf-mirror" >"$WORK/tfrc"
  export TF_CLI_CONFIG_FILE=$WORK/tfrc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_DATA_DIR
  ok "terraform fmt -check" "${OFFLINE[@]}" terraform fmt -check -recursive terraform
  bad=$(copy terraform/modules/ecr); sed -i 's/^  name                 = var.name/  name = var.name/' "$bad/main.tf"
  broken "terraform fmt -check on a misaligned file" "${OFFLINE[@]}" terraform fmt -check "$bad"
  # The provider-free module: init without backend or providers, validate, and its tests.
  tf_module() {
    local dir=$1
    TF_DATA_DIR="$WORK/tfdata.$(basename "$(dirname "$dir")").$(basename "$dir")"
    (cd "$dir" && "${OFFLINE[@]}" terraform init -backend=false -input=false -no-color >/dev/null \
      && "${OFFLINE[@]}" terraform validate -no-color && "${OFFLINE[@]}" terraform test -no-color)
  }
  ok "terraform validate + test (modules/layout)" tf_module terraform/modules/layout
  bad=$(copy terraform/modules/layout); sed -i 's|"10.40.16.0/20", "10.40.32.0/20"|"10.40.16.0/20", "10.40.48.0/20"|' "$bad/tests/layout.tftest.hcl"
  broken "terraform test with a wrong expected subnet" tf_module "$bad"
  bad=$(copy terraform/modules/layout); sed -i 's/cidrsubnet(local.quarters\[1\], 2, z)/cidrsubnet(local.quarters[0], 2, z)/' "$bad/main.tf"
  broken "terraform test on an overlapping address plan" tf_module "$bad"
else
  printf '   (no terraform binary: fmt, validate and test skipped)\n'
fi

# ---------------------------------------------------------------------------------------------
section "workflows and GitOps"
ok "GitHub workflow schema" "${OFFLINE[@]}" "$VBIN/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/ci.yml .github/workflows/release.yml
bad=$(copy .github/workflows/ci.yml); sed -i 's/^    runs-on:/    runs_on:/' "$bad"
broken "GitHub workflow schema on runs_on" "${OFFLINE[@]}" "$VBIN/check-jsonschema" --builtin-schema vendor.github-workflows "$bad"

ok "Argo CD Application renders and validates" "$PY" scripts/deploy/argocd_check.py deploy/argocd/emporium.yaml "$HELM" "$VBIN/kubernetes-validate"
bad=$(copy deploy/argocd/emporium.yaml); sed -i 's|path: charts/emporium|path: charts/emporium-x|' "$bad"
broken "Argo CD Application pointing at a missing chart" "$PY" scripts/deploy/argocd_check.py "$bad" "$HELM" "$VBIN/kubernetes-validate"
bad=$(copy deploy/argocd/emporium.yaml); sed -i 's|- name: store.caConfigMap|- name: store.caConfigMapp|' "$bad"
broken "Argo CD Application with a parameter the schema refuses" "$PY" scripts/deploy/argocd_check.py "$bad" "$HELM" "$VBIN/kubernetes-validate"

bump_check() { # the release workflow's image bump leaves a valid Application naming the new image
  local app=$1
  "$PY" scripts/deploy/bump_image.py "$app" 9.8.7 "sha256:$(printf '%064d' 7)" \
    && grep -q 'value: "9.8.7"' "$app" \
    && "$PY" scripts/deploy/argocd_check.py "$app" "$HELM" "$VBIN/kubernetes-validate"
}
ok "release workflow's image bump of the Application" bump_check "$(copy deploy/argocd/emporium.yaml)"
bad=$(copy deploy/argocd/emporium.yaml); sed -i 's/- name: image.tag$/- name: image.version/' "$bad"
broken "image bump of an Application without image.tag" bump_check "$bad"

# ---------------------------------------------------------------------------------------------
section "documentation"
ok "docs/deploy-aws.md names only what the repository has" "$PY" scripts/deploy/doc_check.py docs/deploy-aws.md
bad=$(copy docs/deploy-aws.md); sed -i 's|output -raw ecr_repository_url|output -raw ecr_url|' "$bad"
broken "doc check on an output Terraform does not declare" "$PY" scripts/deploy/doc_check.py "$bad"
bad=$(copy docs/deploy-aws.md); sed -i 's|terraform/envs/dev/backend.hcl.example|terraform/envs/dev/backend.example|' "$bad"
broken "doc check on a path that does not exist" "$PY" scripts/deploy/doc_check.py "$bad"

# ---------------------------------------------------------------------------------------------
section "the binary as the chart runs it"
if [[ ${SKIP_BINARY:-} == 1 ]]; then
  printf '   (SKIP_BINARY=1: not built, not started)\n'
else
  cargo build --quiet -p emporium-http --bin emporium
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/emporium
  # One node on the embedded store: the chart's default values.
  ok "binary with the chart's single-node environment serves" "$PY" scripts/deploy/rendered_env.py "$WORK/default.yaml" Dockerfile "$BIN"
  # One node in cluster mode, as a release with cluster.enabled renders it (peer DNS, peer
  # listener, cluster secret, claim TTL, ordinal from HOSTNAME) on a shared store: a throwaway
  # SecantusDB and a DNS server for the headless Service, both inside the test's namespace.
  if ! .venv-mongo/bin/python -c 'import secantus' 2>/dev/null; then
    python3 -m venv .venv-mongo && .venv-mongo/bin/pip install -q secantusdb
  fi
  render "$WORK/cluster.yaml" "$CHART" --set cluster.enabled=true --set store.kind=mongodb --set persistence.enabled=false \
    --set-string 'secrets.storeUrl=mongodb://127.0.0.1:27017/emporium?directConnection=true'
  ok "binary with the chart's cluster-mode environment serves" "$PY" scripts/deploy/rendered_env.py "$WORK/cluster.yaml" Dockerfile "$BIN" --mongo-python .venv-mongo/bin/python
  bad=$(copy "$WORK/cluster.yaml"); sed -i 's/^  EMPORIUM_PEER_DNS:/  EMPORIUM_PEER_DNZ:/' "$bad"
  broken "binary with a cluster setting name it does not know" "$PY" scripts/deploy/rendered_env.py "$bad" Dockerfile "$BIN" --mongo-python .venv-mongo/bin/python
  bad=$(copy "$WORK/default.yaml"); sed -i 's/^  EMPORIUM_SHARDS:/  EMPORIUM_SHARDZ:/' "$bad"
  broken "binary with a setting name it does not know" "$PY" scripts/deploy/rendered_env.py "$bad" Dockerfile "$BIN"
  bad=$(copy "$WORK/default.yaml"); sed -i 's|path: /healthz|path: /health|' "$bad"
  broken "binary probed on a path it does not serve" "$PY" scripts/deploy/rendered_env.py "$bad" Dockerfile "$BIN"
fi

printf '\ndeploy checks: %d passed, %d failed (%ds)\n' "$passed" "$failed" "$(($(date +%s) - START))"
if ((failed)); then
  printf '   failed: %s\n' "${failures[@]}"
  exit 1
fi
