#!/usr/bin/env python3
"""Checks that a deployment document names only things the repository has.

In the document's shell blocks and inline code:
  - every repository path (charts/, terraform/, scripts/, deploy/, docs/, .github/, Dockerfile)
    exists; a path a command writes (curl -o, cp's destination) needs only its directory;
  - `terraform -chdir=DIR`: DIR is a Terraform root; each `-var NAME=` / `-var=NAME=` is a
    variable it declares, each `output ... NAME` an output it declares, each
    `-target=module.a.module.b` a module path it has;
  - `kubectl -n NS ... statefulset/NAME | ingress NAME` and `helm test NAME` match the release the
    Terraform module installs (namespace and release name), and `--set`/values keys it mentions as
    `replicaCount` etc. exist in charts/emporium/values.yaml.
Usage: doc_check.py DOC.md   (exit 1 with the list of problems)
"""
import os
import re
import shlex
import sys

import hcl2

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREFIXES = ("charts/", "terraform/", "scripts/", "deploy/", "docs/", ".github/", "Dockerfile")


def tf_root(path):
    """Variables, outputs and modules (name -> source dir) declared in one directory."""
    decl = {"variable": set(), "output": set(), "module": {}}
    for name in sorted(os.listdir(path)):
        if not name.endswith(".tf"):
            continue
        with open(os.path.join(path, name)) as f:
            doc = hcl2.load(f)
        for kind in ("variable", "output"):
            for entry in doc.get(kind, []):
                decl[kind].update(k.strip('"') for k in entry)
        for entry in doc.get("module", []):
            for k, body in entry.items():
                decl["module"][k.strip('"')] = os.path.normpath(os.path.join(path, body["source"].strip('"')))
    return decl


def shell_commands(text):
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                yield line


def check(doc):
    text = open(doc).read()
    problems = []
    ns = release = None
    module_src = open(os.path.join(REPO, "terraform/modules/emporium/main.tf")).read()
    m = re.search(r'variable "namespace" \{[^}]*default\s*=\s*"([^"]+)"', module_src)
    ns = m.group(1) if m else None
    m = re.search(r'resource "helm_release" "emporium" \{.*?\n\s*name\s*=\s*"([^"]+)"', module_src, re.S)
    release = m.group(1) if m else None

    def path_ok(p, written=False):
        p = p.rstrip(".,:;)")
        full = os.path.join(REPO, p)
        if written:
            if not os.path.isdir(os.path.dirname(full)):
                problems.append(f"{p}: its directory does not exist")
        elif not os.path.exists(full):
            problems.append(f"{p}: no such file or directory in the repository")

    for code in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        for tok in code.split():
            if tok.startswith(PREFIXES) and "<" not in tok and "*" not in tok:
                path_ok(tok)

    for cmd in shell_commands(text):
        try:
            words = shlex.split(cmd.replace("$(", " ").replace(")", " "))
        except ValueError as e:
            problems.append(f"cannot parse {cmd!r}: {e}")
            continue
        written = set()
        for i, w in enumerate(words):
            if w in ("-o", "--output") and i + 1 < len(words):
                written.add(i + 1)
        for i, w in enumerate(words):
            if w == "cp":
                args = [j for j in range(i + 1, len(words)) if not words[j].startswith("-")][:2]
                if len(args) == 2:
                    written.add(args[1])
        for i, w in enumerate(words):
            if w.startswith(PREFIXES) and "$" not in w:
                path_ok(w, written=i in written)
        for i, w in enumerate(words):
            if not w.startswith("-chdir="):
                continue
            root = os.path.join(REPO, w.split("=", 1)[1])
            if not os.path.isdir(root):
                continue  # reported by the path check
            decl = tf_root(root)
            rest = words[i + 1:]
            for j, a in enumerate(rest):
                var = None
                if a == "-var" and j + 1 < len(rest):
                    var = rest[j + 1].split("=", 1)[0]
                elif a.startswith("-var="):
                    var = a[5:].split("=", 1)[0]
                if var and var not in decl["variable"]:
                    problems.append(f"{w}: no variable {var!r} (in: {cmd[:80]})")
                if a.startswith("-target="):
                    parts = a.split("=", 1)[1].split(".")
                    scope = decl
                    for k in range(0, len(parts) - 1, 2):
                        if parts[k] != "module" or parts[k + 1] not in scope["module"]:
                            problems.append(f"{w}: no {'.'.join(parts[:k + 2])}")
                            break
                        scope = tf_root(scope["module"][parts[k + 1]])
            if "output" in rest:
                names = [a for a in rest[rest.index("output") + 1:] if not a.startswith("-")]
                for name in names[:1]:
                    if name not in decl["output"]:
                        problems.append(f"{w}: no output {name!r}")
        if words[:1] == ["kubectl"] and "-n" in words:
            if words[words.index("-n") + 1] != ns:
                problems.append(f"namespace {words[words.index('-n') + 1]!r} is not the release's ({ns}): {cmd}")
            for w in words:
                m = re.match(r"(statefulset|ingress)/(.+)", w)
                if m and m.group(2) != release:
                    problems.append(f"{w}: the release's objects are named {release!r}")
        if words[:2] == ["helm", "test"] and words[2] != release:
            problems.append(f"helm test {words[2]}: the release is {release!r}")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    found = check(sys.argv[1])
    for p in found:
        print(p)
    print(f"doc check: {sys.argv[1]}: {len(found)} problems")
    sys.exit(1 if found else 0)
