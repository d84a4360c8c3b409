#!/usr/bin/env python3
"""Sets image.tag (and image.digest) in the Argo CD Application's Helm parameters, in place.

Usage: bump_image.py deploy/argocd/emporium.yaml VERSION [DIGEST]
Only the value lines of those two parameters change; comments and layout stay.
"""
import re
import sys


def bump(text, tag, digest):
    out, pending, done = [], None, set()
    for line in text.splitlines(keepends=True):
        m = re.match(r"\s*- name: (image\.tag|image\.digest)\s*$", line)
        if m:
            pending = m.group(1)
        elif pending and re.match(r"\s*value:", line):
            indent = line[: len(line) - len(line.lstrip())]
            line = f'{indent}value: "{tag if pending == "image.tag" else digest}"\n'
            done.add(pending)
            pending = None
        out.append(line)
    if done != {"image.tag", "image.digest"}:
        raise SystemExit(f"parameters not found: {sorted({'image.tag', 'image.digest'} - done)}")
    return "".join(out)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    path, tag = sys.argv[1], sys.argv[2]
    digest = sys.argv[3] if len(sys.argv) == 4 else ""
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(bump(text, tag, digest))
