#!/usr/bin/env python3
"""Checks an Argo CD Application of the chart the way Argo CD would use it, offline:
its source path is a chart in this repository, its value files exist there, and `helm template`
with those value files and parameters (as Argo CD passes them, --set) renders and passes
kubernetes-validate --strict against 1.31. Also checks the sync options this chart relies on.

Usage: argocd_check.py APPLICATION.yaml HELM KUBERNETES_VALIDATE
"""
import os
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NEEDED_SYNC_OPTIONS = {"CreateNamespace=false", "ServerSideApply=true", "RespectIgnoreDifferences=true"}


def main(app_path, helm, kvalidate):
    with open(app_path) as f:
        app = yaml.safe_load(f)
    problems = []
    if app.get("kind") != "Application" or not app.get("apiVersion", "").startswith("argoproj.io/"):
        problems.append("not an argoproj.io Application")
    spec = app.get("spec", {})
    src = spec.get("source", {})
    chart = os.path.join(REPO, src.get("path", ""))
    if not os.path.isfile(os.path.join(chart, "Chart.yaml")):
        problems.append(f"source.path {src.get('path')!r} is not a chart in this repository")
    helm_cfg = src.get("helm", {})
    for vf in helm_cfg.get("valueFiles", []):
        if not os.path.isfile(os.path.join(chart, vf)):
            problems.append(f"valueFiles: {vf} does not exist in {src.get('path')}")
    options = set(spec.get("syncPolicy", {}).get("syncOptions", []))
    for missing in sorted(NEEDED_SYNC_OPTIONS - options):
        problems.append(f"syncOptions lacks {missing}")
    if problems:
        print("\n".join(problems))
        return 1
    args = [helm, "template", helm_cfg.get("releaseName", app["metadata"]["name"]), chart,
            "--namespace", spec["destination"]["namespace"]]
    for vf in helm_cfg.get("valueFiles", []):
        args += ["-f", os.path.join(chart, vf)]
    for p in helm_cfg.get("parameters", []):
        args += ["--set-string" if p.get("forceString") else "--set", f"{p['name']}={p['value']}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"helm template with the Application's values failed:\n{r.stderr}")
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as out:
        out.write(r.stdout)
        out.flush()
        v = subprocess.run([kvalidate, "--strict", "-k", "1.31.0", out.name], capture_output=True, text=True)
    bad = [line for line in (v.stdout + v.stderr).splitlines()
           if line.startswith("ERROR") or ("Couldn't find schema" in line and "ServiceMonitor" not in line)]
    if v.returncode != 0 or bad:
        print("\n".join(bad) or v.stdout + v.stderr)
        return 1
    print(f"argocd: {app_path}: chart {src['path']} renders {r.stdout.count('kind: ')} objects, all valid")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:]))
