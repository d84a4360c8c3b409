#!/usr/bin/env python3
"""Starts the real emporium binary the way the chart and the image run it, and checks that it serves.

Reads a `helm template` rendering and the Dockerfile, and builds the container's process from them:
  - the command: the Dockerfile's ENTRYPOINT with the StatefulSet container's args;
  - the environment: the Dockerfile's ENV, overridden by the container's envFrom ConfigMaps and env
    entries (values and secretKeyRefs resolved from the rendered ConfigMap/Secret), HOSTNAME set to
    pod 0's name as Kubernetes sets it;
  - the user: the pod's runAsUser/runAsGroup; the working directory: read-only; the volumes: fresh
    writable directories at the container's mount paths.
It runs in private network and mount namespaces (`unshare -mn`, loopback only), so the chart's
0.0.0.0 listener is reachable from nowhere else. Then it checks the startup, readiness and
liveness probes' paths answer 200 on the container port they name, that the catalog answers, and
that on SIGTERM /readyz turns 503 within a second and the process exits by itself within the
pod's terminationGracePeriodSeconds.

In cluster mode (the rendering sets EMPORIUM_PEER_DNS) the namespace also gets what the cluster
would give the pod: a DNS server for the headless Service's records (A per pod, SRV
_peer._tcp.<service>) behind a private /etc/resolv.conf, and the shared store the rendered
EMPORIUM_STORE names, when that is a loopback mongodb:// URI (a throwaway SecantusDB started with
--mongo-python).

Usage: rendered_env.py RENDERED.yaml DOCKERFILE BINARY [--mongo-python PYTHON]
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import base64
import re
import socket

import yaml


def fail(msg):
    print(f"rendered-env: FAIL: {msg}")
    sys.exit(1)


def dockerfile_runtime(path):
    """ENV and ENTRYPOINT of the Dockerfile's last stage."""
    lines, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append((cur + line).strip())
        cur = ""
    stage = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stage = []
        stage.append(line)
    env, entrypoint = {}, None
    for line in stage:
        word, _, rest = line.partition(" ")
        if word.upper() == "ENV":
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                env[k] = v
        elif word.upper() == "ENTRYPOINT":
            entrypoint = json.loads(rest)
    if not entrypoint:
        fail(f"{path}: no ENTRYPOINT in the last stage")
    return env, entrypoint


def container_process(docs):
    by_kind = {}
    for d in docs:
        if d:
            by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    sts_all = list(by_kind.get("StatefulSet", {}).values())
    if len(sts_all) != 1:
        fail(f"expected one StatefulSet, found {len(sts_all)}")
    sts = sts_all[0]
    pod = sts["spec"]["template"]["spec"]
    (c,) = [c for c in pod["containers"] if c["name"] == "emporium"]
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    env = {}
    for src in c.get("envFrom", []):
        ref = src.get("configMapRef") or fail(f"unsupported envFrom {src}")
        cm = configmaps.get(ref["name"]) or fail(f"envFrom names ConfigMap {ref['name']} that the chart does not render")
        env.update({k: str(v) for k, v in cm.get("data", {}).items()})
    for e in c.get("env", []):
        if "value" in e:
            # Kubernetes expands $(NAME) from variables defined before this one.
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
            continue
        field = e.get("valueFrom", {}).get("fieldRef")
        if field:
            # The pod's IP is its loopback address in the private network namespace this runs in.
            known = {"status.podIP": "127.0.0.1", "metadata.name": f"{sts['metadata']['name']}-0"}
            env[e["name"]] = known.get(field.get("fieldPath")) or fail(f"unsupported fieldRef {field}")
            continue
        ref = e.get("valueFrom", {}).get("secretKeyRef") or fail(f"unsupported env source {e}")
        sec = secrets.get(ref["name"]) or fail(f"env {e['name']} names Secret {ref['name']} that the chart does not render")
        if ref["key"] not in sec.get("data", {}):
            fail(f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
        env[e["name"]] = base64.b64decode(sec["data"][ref["key"]]).decode()
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c}
    sc = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
    mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")]
    return {
        "name": sts["metadata"]["name"],
        "args": c.get("args", []),
        "command": c.get("command"),
        "env": env,
        "ports": ports,
        "probes": probes,
        "uid": sc.get("runAsUser"),
        "gid": sc.get("runAsGroup"),
        "read_only_root": sc.get("readOnlyRootFilesystem", False),
        "mounts": mounts,
        "grace": pod.get("terminationGracePeriodSeconds", 30),
    }


def get(port, path, timeout=2):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def wait_port(port, what, proc=None, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            fail(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    fail(f"{what} not listening on {port} after {seconds} s")


def cluster_services(spec, helpers):
    """The headless Service's DNS and the shared store, inside the namespace."""
    env = spec["env"]
    dns = env.get("EMPORIUM_PEER_DNS")
    if dns:
        here = os.path.dirname(os.path.abspath(__file__))
        resolv = os.path.join(spec["stage"], "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
        # Pod 0 is this process's loopback address in the namespace.
        helpers.append(subprocess.Popen([sys.executable, os.path.join(here, "dns_stub.py"), "127.0.0.1", "53",
                                         dns, spec["name"], "peer", str(spec["ports"]["peer"]), "127.0.0.1"]))
        print(f"rendered-env: DNS for {dns} (A, SRV _peer._tcp) on 127.0.0.1:53")
    store = env.get("EMPORIUM_STORE", "")
    m = re.match(r"mongodb://(?:[^@/]*@)?(127\.0\.0\.1|localhost):(\d+)", store)
    if store.startswith("mongodb://"):
        if not m or not spec.get("mongo_python"):
            fail("a mongodb:// store is started here only on a loopback address with --mongo-python")
        port = int(m.group(2))
        proc = subprocess.Popen([spec["mongo_python"], "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
                                 "--storage-path", ":memory:", "--log-level", "WARNING"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        helpers.append(proc)
        wait_port(port, "SecantusDB", proc)
        print(f"rendered-env: SecantusDB on 127.0.0.1:{port}")


def inside(spec_path):
    """Runs in the private namespaces: sets up the pod's filesystem view and runs the checks."""
    spec = json.load(open(spec_path))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    helpers = []
    try:
        cluster_services(spec, helpers)
        run_pod(spec)
    finally:
        for h in helpers:
            h.kill()
            h.wait()


def run_pod(spec):
    for path in spec["mounts"]:
        if not os.path.isdir(path):
            # The mount point exists in the image, not on this machine: an empty layer over its
            # nearest existing ancestor (in this mount namespace only) makes room for it.
            ancestor = os.path.dirname(path.rstrip("/"))
            while not os.path.isdir(ancestor):
                ancestor = os.path.dirname(ancestor)
            if ancestor == "/":
                fail(f"cannot make a mount point for {path}")
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", ancestor], check=True)
            os.makedirs(path)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0770", "tmpfs", path], check=True)
        os.chown(path, spec["uid"], spec["gid"])
    workdir = tempfile.mkdtemp()
    os.chmod(workdir, 0o555)
    cmd = ["setpriv", f"--reuid={spec['uid']}", f"--regid={spec['gid']}", "--clear-groups"] + spec["cmd"]
    port = spec["ports"]["http"]
    log = open(spec["log"], "wb")
    proc = subprocess.Popen(cmd, env=spec["env"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        start = spec["probes"]["startupProbe"]
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                fail(f"the binary exited with {proc.returncode} before its startup probe passed")
            status, _ = get(port if start["port"] == "http" else start["port"], start["path"])
            if status == 200:
                break
            if time.time() > deadline:
                fail(f"startup probe {start['path']} not 200 within 120 s")
            time.sleep(0.2)
        print(f"rendered-env: started in {120 - (deadline - time.time()):.1f} s")
        for name, probe in spec["probes"].items():
            p = spec["ports"][probe["port"]] if isinstance(probe["port"], str) else probe["port"]
            status, body = get(p, probe["path"])
            if status != 200:
                fail(f"{name} {probe['path']} on port {p}: {status} {body[:200]!r}")
            print(f"rendered-env: {name} {probe['path']} -> 200 {body[:120].decode(errors='replace')}")
        status, body = get(port, "/api/products?limit=1")
        if status != 200 or b'"products"' not in body:
            fail(f"/api/products: {status} {body[:200]!r}")
        print("rendered-env: /api/products -> 200")
        status, body = get(port, "/metrics")
        if status != 200 or b"emporium_http_requests_total" not in body:
            fail(f"/metrics: {status}")
        print("rendered-env: /metrics -> 200")
        # Kubernetes: preStop first (the pod keeps serving), then SIGTERM.
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        grace = int(spec["env"].get("EMPORIUM_SHUTDOWN_GRACE_SECS", "0"))
        if grace > 0:
            seen = None
            while time.time() - t0 < 1.5:
                seen, _ = get(port, "/readyz", timeout=0.5)
                if seen == 503:
                    break
                time.sleep(0.05)
            if seen != 503:
                fail(f"/readyz still {seen} after SIGTERM (EMPORIUM_SHUTDOWN_GRACE_SECS={grace})")
            print("rendered-env: after SIGTERM /readyz -> 503")
        try:
            rc = proc.wait(timeout=spec["grace"])
        except subprocess.TimeoutExpired:
            fail(f"still running {spec['grace']} s (terminationGracePeriodSeconds) after SIGTERM")
        if rc != 0:
            fail(f"exited with {rc} after SIGTERM")
        print(f"rendered-env: exited 0, {time.time() - t0:.1f} s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main(argv):
    if len(argv) == 3 and argv[1] == "--inside":
        inside(argv[2])
        return 0
    mongo_python = None
    if len(argv) == 6 and argv[4] == "--mongo-python":
        mongo_python = os.path.abspath(argv[5])
        argv = argv[:4]
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    rendered, dockerfile, binary = argv[1:]
    docs = list(yaml.safe_load_all(open(rendered)))
    proc = container_process(docs)
    image_env, entrypoint = dockerfile_runtime(dockerfile)
    if proc["command"]:
        fail("the chart overrides the image's ENTRYPOINT; it should pass args only")
    if not proc["read_only_root"] or proc["uid"] in (None, 0):
        fail("the pod must run as a non-root user on a read-only root filesystem")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **image_env, **proc["env"], "HOSTNAME": f"{proc['name']}-0"}
    # Outside /tmp (the pod's /tmp volume is mounted over it inside the namespace), somewhere the
    # unprivileged user can reach.
    tmp = tempfile.mkdtemp(prefix="emporium-rendered-", dir="/var/tmp")
    if any(m == "/var/tmp" or m.startswith("/var/tmp/") for m in proc["mounts"]):
        fail("the pod mounts /var/tmp, where this test stages the binary")
    os.chmod(tmp, 0o755)
    # The image's binary path, rooted in a directory the unprivileged user can read.
    exe = os.path.join(tmp, entrypoint[0].lstrip("/"))
    os.makedirs(os.path.dirname(exe))
    shutil.copy(binary, exe)
    os.chmod(exe, 0o755)
    spec = {**proc, "env": env, "cmd": [exe] + entrypoint[1:] + proc["args"], "log": os.path.join(tmp, "emporium.log"),
            "stage": tmp, "mongo_python": mongo_python}
    print("rendered-env: command:", " ".join(entrypoint + proc["args"]), f"(as {proc['uid']}:{proc['gid']})")
    print("rendered-env: environment:", ", ".join(f"{k}={'***' if 'SECRET' in k or 'URL' in k or k == 'EMPORIUM_STORE' and '://' in v else v}" for k, v in sorted(env.items())))
    with open(os.path.join(tmp, "spec.json"), "w") as f:
        json.dump(spec, f)
    # Namespaces, mounts and the user switch need root: sudo where this runs unprivileged (CI runners).
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    r = subprocess.run(sudo + ["unshare", "-mn", "--propagation", "private", sys.executable, os.path.abspath(__file__), "--inside", os.path.join(tmp, "spec.json")])
    if r.returncode != 0:
        print("rendered-env: the binary's log:")
        if os.path.exists(spec["log"]):
            sys.stdout.write(open(spec["log"], errors="replace").read()[-4000:])
    shutil.rmtree(tmp, ignore_errors=True)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
