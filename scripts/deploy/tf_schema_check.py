#!/usr/bin/env python3
"""Checks every resource, data and provider block of Terraform files against the provider schemas.

The schemas come from the cdktf provider packages' jsii assemblies (`.tools/schemas/*.jsii`, installed
by scripts/deploy-tools.sh): each resource class names its Terraform type in its docs and takes a
configuration struct whose properties are the resource's arguments and nested blocks, each marked
optional or not. For every block in the given .tf files this reports
  - an argument or nested block the provider does not have (a misspelling fails here),
  - a required argument or block that is missing,
  - a resource or data type the provider does not have,
and exits 1 if anything was reported. Usage: tf_schema_check.py SCHEMA_DIR PATH... (dirs are walked).
"""
import json
import os
import re
import sys

import hcl2

META = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
ANCHOR = re.compile(r"/docs(?:/(?:resources|data-sources)/\w+)?#(\w+) ")
TYPE_LINK = re.compile(r"/docs(?:/(resources|data-sources)/\w+)? (\w+)\}")


def snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def struct_fqns(typ):
    """The struct types a property's type refers to (a block or an object attribute)."""
    if "fqn" in typ:
        yield typ["fqn"]
    for t in typ.get("union", {}).get("types", []):
        yield from struct_fqns(t)
    coll = typ.get("collection")
    if coll and coll.get("kind") == "array":
        yield from struct_fqns(coll["elementtype"])


def build_index(jsii_path):
    with open(jsii_path) as f:
        types = json.load(f)["types"]
    structs = {}

    def struct(fqn):
        if fqn in structs:
            return fqn
        t = types.get(fqn)
        if not t or not t.get("datatype"):
            return None
        structs[fqn] = {}
        props = {}
        for p in t.get("properties", []):
            m = ANCHOR.search(p.get("docs", {}).get("remarks", ""))
            name = m.group(1) if m else snake(p["name"])
            nested = None
            for sub in struct_fqns(p["type"]):
                nested = struct(sub) or nested
            props[name] = {"required": not p.get("optional", False), "nested": nested}
        structs[fqn] = props
        return fqn

    kinds = {}
    for fqn, t in types.items():
        if t.get("kind") != "class" or "initializer" not in t:
            continue
        m = TYPE_LINK.search(t.get("docs", {}).get("summary", ""))
        params = t["initializer"].get("parameters", [])
        if not m or not params or "fqn" not in params[-1]["type"]:
            continue
        kind = {"resources": "resource", "data-sources": "data", None: "provider"}[m.group(1)]
        cfg = struct(params[-1]["type"]["fqn"])
        if cfg:
            kinds[f"{kind} {m.group(2)}"] = cfg
    return {"kinds": kinds, "structs": structs}


def load_schemas(schema_dir):
    merged = {"kinds": {}, "structs": {}}
    for name in sorted(os.listdir(schema_dir)):
        if not name.endswith(".jsii"):
            continue
        path = os.path.join(schema_dir, name)
        cache = path + ".index.json"
        if not os.path.exists(cache) or os.path.getmtime(cache) < os.path.getmtime(path):
            with open(cache + ".tmp", "w") as f:
                json.dump(build_index(path), f)
            os.replace(cache + ".tmp", cache)
        with open(cache) as f:
            idx = json.load(f)
        merged["kinds"].update(idx["kinds"])
        merged["structs"].update(idx["structs"])
    return merged


def unquote(label):
    return label[1:-1] if label.startswith('"') and label.endswith('"') else label


class Checker:
    def __init__(self, schemas):
        self.kinds = schemas["kinds"]
        self.structs = schemas["structs"]
        self.errors = []
        self.blocks = 0

    def check_body(self, where, body, fqn, top):
        props = self.structs[fqn]
        present = set()
        for key, value in body.items():
            if key.startswith("__") or (top and key in META):
                continue
            if key == "dynamic":
                for dyn in value:
                    for label, dbody in dyn.items():
                        name = unquote(label)
                        present.add(name)
                        if name not in props:
                            self.errors.append(f"{where}: no block {name!r} (dynamic)")
                        elif props[name]["nested"]:
                            for content in dbody.get("content", []):
                                self.check_body(f"{where}.{name}", content, props[name]["nested"], False)
                continue
            present.add(key)
            if key not in props:
                self.errors.append(f"{where}: no argument or block {key!r}")
                continue
            nested = props[key]["nested"]
            if nested is None:
                continue
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    self.check_body(f"{where}.{key}", item, nested, False)
        for name, p in props.items():
            if p["required"] and name not in present:
                self.errors.append(f"{where}: missing required {name!r}")

    def check_file(self, path):
        with open(path) as f:
            doc = hcl2.load(f)
        for kind in ("resource", "data"):
            for entry in doc.get(kind, []):
                for rtype, named in entry.items():
                    rtype = unquote(rtype)
                    for rname, body in named.items():
                        where = f"{path}: {kind} {rtype}.{unquote(rname)}"
                        self.blocks += 1
                        fqn = self.kinds.get(f"{kind} {rtype}")
                        if fqn is None:
                            self.errors.append(f"{where}: the provider schemas have no {kind} type {rtype!r}")
                            continue
                        self.check_body(where, body, fqn, True)
        for entry in doc.get("provider", []):
            for pname, body in entry.items():
                pname = unquote(pname)
                fqn = self.kinds.get(f"provider {pname}")
                self.blocks += 1
                if fqn is None:
                    self.errors.append(f"{path}: provider {pname!r} has no schema")
                    continue
                body = {k: v for k, v in body.items() if k != "alias"}
                self.check_body(f"{path}: provider {pname}", body, fqn, True)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    checker = Checker(load_schemas(argv[1]))
    files = []
    for arg in argv[2:]:
        if os.path.isdir(arg):
            for root, dirs, names in os.walk(arg):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".tf")]
        else:
            files.append(arg)
    for path in files:
        checker.check_file(path)
    for e in checker.errors:
        print(e)
    print(f"terraform schema check: {len(files)} files, {checker.blocks} blocks, {len(checker.errors)} problems")
    if not files or checker.blocks == 0:
        print("no blocks checked: nothing to check is a failure")
        return 1
    return 1 if checker.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
