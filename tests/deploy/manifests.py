#!/usr/bin/env python3
"""tests/deploy/manifests.py — the deployment files agree with the code.

Parses deploy/docker-compose.yml and deploy/k8s/*.yaml as YAML and reads the
Dockerfile, the systemd unit and deploy/README.md, then checks that they name
the port, the paths and the LSMI_* variables the daemon really uses (the
documentation's own checks are tests/deploy/docs.py). What the code
uses is read from the code itself (string literals in the C sources, and
`lsmi serve --help` when the binary is given), so the files cannot drift.

Usage: manifests.py REPO_ROOT [LSMI_BINARY]
Prints one line per check and "N passed, N failed" last.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

from checks import check, finish, reader

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
BIN = sys.argv[2] if len(sys.argv) > 2 else None
read = reader(ROOT)


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


# --------------------------------------------------------------------------
# What the code says.
sources = ""
for path in sorted(p for room in ("cli", "server", "core", "io", "common")
                   for p in glob.glob(os.path.join(ROOT, room, "*.[ch]"))):
    with open(path, encoding="utf-8", errors="replace") as f:
        sources += f.read()
help_text = ""
if BIN:
    try:
        r = subprocess.run([BIN, "serve", "--help"], capture_output=True,
                           text=True, timeout=20)
        help_text = r.stdout + r.stderr
        check("`lsmi serve --help` exits 0", r.returncode == 0,
              f"exit {r.returncode}")
    except (OSError, subprocess.TimeoutExpired) as e:
        check("`lsmi serve --help` runs", False, str(e))
    try:
        r = subprocess.run([BIN, "probe", "--help"], capture_output=True,
                           text=True, timeout=20)
        check("`lsmi probe --help` exits 0 (the HEALTHCHECK command)",
              r.returncode == 0, f"exit {r.returncode}")
    except (OSError, subprocess.TimeoutExpired) as e:
        check("`lsmi probe --help` runs", False, str(e))

# Macro names in the C sources are not environment variables: the variables
# are the names that occur as string literals or in the help text.
help_vars = set(re.findall(r"\b(LSMI_[A-Z][A-Z0-9_]*)\b", help_text))
code_vars = set(re.findall(r'"(LSMI_[A-Z0-9_]+)"', sources)) | help_vars
check("the code reads LSMI_* variables", len(code_vars) > 0,
      "no \"LSMI_...\" literal in the sources")
for var in ("LSMI_LISTEN", "LSMI_DATA_DIR", "LSMI_TOKENS_FILE", "LSMI_TOKENS"):
    check(f"the code reads {var}", var in code_vars)

m = re.search(r'"((?:127\.0\.0\.1|localhost|\[::1\]):(\d+))"', sources)
default_listen = m.group(1) if m else None
check("the code has a loopback default listen address",
      default_listen is not None)
PORT = port_of(default_listen) if default_listen else 8080
check(f"default port {PORT} is also in `lsmi serve --help`",
      not help_text or str(PORT) in help_text)
for path in ("/healthz", "/readyz"):
    check(f"the daemon serves {path}", f'"{path}"' in sources)


def env_vars_in(text):
    return set(re.findall(r"\b(LSMI_[A-Z][A-Z0-9_]*)\b", text))


def known(what, names):
    unknown = sorted(v for v in names if v not in code_vars)
    check(f"{what} names only LSMI_* variables the code reads", not unknown,
          "unknown: " + ", ".join(unknown))


# --------------------------------------------------------------------------
# Dockerfile (not YAML: read the instructions we rely on).
dockerfile = read("Dockerfile")
joined = re.sub(r"\\\n", " ", dockerfile)
instr = [l.strip() for l in joined.splitlines()
         if l.strip() and not l.strip().startswith("#")]
froms = [l for l in instr if l.upper().startswith("FROM ")]
check("Dockerfile: multi-stage on debian:bookworm-slim",
      len(froms) >= 2 and all("debian:bookworm-slim" in l for l in froms))
final = instr[max(i for i, l in enumerate(instr)
                  if l.upper().startswith("FROM ")):]


def last(keyword):
    hits = [l[len(keyword):].strip() for l in final
            if l.upper().startswith(keyword + " ")]
    return hits[-1] if hits else None


denv = dict(re.findall(r"(LSMI_[A-Z0-9_]+)=(\S+)", " ".join(
    l for l in final if l.upper().startswith("ENV "))))
expose = last("EXPOSE")
check("Dockerfile: EXPOSE is the default port", expose == str(PORT),
      f"EXPOSE {expose}")
check("Dockerfile: LSMI_LISTEN binds every address on that port",
      denv.get("LSMI_LISTEN") == f"0.0.0.0:{PORT}", str(denv.get("LSMI_LISTEN")))
DATA = denv.get("LSMI_DATA_DIR")
check("Dockerfile: LSMI_DATA_DIR is /var/lib/lsmi", DATA == "/var/lib/lsmi")
vol = last("VOLUME") or ""
check("Dockerfile: VOLUME is the data dir", DATA is not None and DATA in vol,
      vol)
user = last("USER") or "root"
check("Dockerfile: runs as a numeric non-root user",
      re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user) is not None, user)
UID = int(user.split(":")[0]) if user[0].isdigit() else None
hc = last("HEALTHCHECK") or ""
check("Dockerfile: HEALTHCHECK runs `lsmi probe` (exec form) on /healthz",
      re.search(r'CMD \["lsmi", "probe".*"/healthz"\]', hc) is not None, hc)
cmd = last("CMD") or ""
check("Dockerfile: CMD is exec-form `lsmi serve`",
      cmd == '["lsmi", "serve"]', cmd)
ep = last("ENTRYPOINT")
entry = read("deploy/docker-entrypoint.sh")
check("Dockerfile: ENTRYPOINT is exec-form and the script ends in exec \"$@\"",
      ep is None or (ep.startswith("[") and
                     entry.rstrip().splitlines()[-1] == 'exec "$@"'), ep)
check("entrypoint: installed from deploy/ and executable",
      "COPY deploy/docker-entrypoint.sh" in dockerfile and
      os.access(os.path.join(ROOT, "deploy", "docker-entrypoint.sh"), os.X_OK))
known("deploy/docker-entrypoint.sh", env_vars_in(entry))
known("Dockerfile", env_vars_in(dockerfile))

# --------------------------------------------------------------------------
# docker-compose.yml
try:
    compose = yaml.safe_load(read("deploy/docker-compose.yml"))
    check("docker-compose.yml parses as YAML", isinstance(compose, dict))
except yaml.YAMLError as e:
    compose = {}
    check("docker-compose.yml parses as YAML", False, str(e))
# docker-compose (Debian's, v1.29), where installed, checks the schema.
if shutil.which("docker-compose"):
    r = subprocess.run(["docker-compose", "-f",
                        os.path.join(ROOT, "deploy", "docker-compose.yml"),
                        "config", "-q"], capture_output=True, text=True,
                       timeout=60)
    check("`docker-compose config` accepts docker-compose.yml",
          r.returncode == 0, r.stderr.strip())
else:
    print("skip `docker-compose config` (no docker-compose here)")
svc = (compose.get("services") or {}).get("lsmi") or {}
check("compose: service lsmi", bool(svc))
cenv = svc.get("environment") or {}
if isinstance(cenv, list):
    cenv = dict(e.split("=", 1) for e in cenv)
known("docker-compose.yml", set(cenv) | env_vars_in(
    read("deploy/docker-compose.yml")))
check("compose: LSMI_LISTEN on the default port",
      port_of(str(cenv.get("LSMI_LISTEN", ":0"))) == PORT)
check("compose: LSMI_DATA_DIR as in the image", cenv.get("LSMI_DATA_DIR") == DATA)
ports = [str(p) for p in svc.get("ports") or []]
check("compose: publishes the container port",
      any(p.split(":")[-1].split("/")[0] == str(PORT) for p in ports), ports)
vols = [str(v) for v in svc.get("volumes") or []]
check("compose: a volume at the data dir",
      any(v.split(":")[1] == DATA for v in vols if ":" in v), vols)
named = [v.split(":")[0] for v in vols if ":" in v]
check("compose: the named volume is declared",
      all(n in (compose.get("volumes") or {}) for n in named
          if not n.startswith((".", "/"))))
tok = cenv.get("LSMI_TOKENS_FILE", "")
secrets = svc.get("secrets") or []
check("compose: LSMI_TOKENS_FILE is the mounted secret",
      any(tok == f"/run/secrets/{s if isinstance(s, str) else s.get('target', s.get('source'))}"
          for s in secrets), tok)
check("compose: the secret is declared",
      all((s if isinstance(s, str) else s["source"]) in (compose.get("secrets") or {})
          for s in secrets) and bool(secrets))
test = (svc.get("healthcheck") or {}).get("test") or []
check("compose: healthcheck is `lsmi probe` on /healthz of the port",
      test[:3] == ["CMD", "lsmi", "probe"] and
      f"127.0.0.1:{PORT}/healthz" in " ".join(test), test)
check("compose: command as the image's CMD",
      svc.get("command") in (None, ["lsmi", "serve"]))

# --------------------------------------------------------------------------
# Kubernetes manifests
docs = []
for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "k8s", "*.yaml"))):
    name = os.path.relpath(path, ROOT)
    try:
        with open(path, encoding="utf-8") as f:
            found = [d for d in yaml.safe_load_all(f) if d]
        check(f"{name} parses as YAML", True)
        docs += found
    except yaml.YAMLError as e:
        check(f"{name} parses as YAML", False, str(e))
    with open(path, encoding="utf-8") as f:
        known(name, env_vars_in(f.read()))
by_kind = {}
for d in docs:
    by_kind.setdefault(d.get("kind"), []).append(d)
for kind in ("Deployment", "Service", "PersistentVolumeClaim", "Secret"):
    check(f"k8s: one {kind}", len(by_kind.get(kind, [])) == 1)
kust = [d for d in docs if d.get("kind") == "Kustomization"]
if kust:
    listed = set(kust[0].get("resources") or [])
    files = {os.path.basename(p) for p in
             glob.glob(os.path.join(ROOT, "deploy", "k8s", "*.yaml"))}
    check("k8s: kustomization lists every manifest",
          listed == files - {"kustomization.yaml"}, sorted(listed))
# kubectl, where installed, renders the kustomization offline.
if shutil.which("kubectl"):
    try:
        r = subprocess.run(["kubectl", "kustomize",
                            os.path.join(ROOT, "deploy", "k8s")],
                           capture_output=True, text=True, timeout=60)
        kinds = sorted(d.get("kind") for d in yaml.safe_load_all(r.stdout) if d) \
            if r.returncode == 0 else r.stderr.strip()
        check("`kubectl kustomize deploy/k8s` renders the four objects",
              kinds == ["Deployment", "PersistentVolumeClaim", "Secret",
                        "Service"], kinds)
    except (OSError, subprocess.TimeoutExpired, yaml.YAMLError) as e:
        check("`kubectl kustomize deploy/k8s` runs", False, str(e))
else:
    print("skip `kubectl kustomize` (no kubectl here)")
dep = (by_kind.get("Deployment") or [{}])[0]
pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
ctr = (pod.get("containers") or [{}])[0]
kenv = {e["name"]: e.get("value") for e in ctr.get("env") or []}
check("k8s: LSMI_LISTEN on the default port",
      port_of(str(kenv.get("LSMI_LISTEN", ":0"))) == PORT)
check("k8s: LSMI_DATA_DIR as in the image", kenv.get("LSMI_DATA_DIR") == DATA)
cports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
check("k8s: containerPort is the default port", PORT in cports.values(), cports)


def probe_ok(probe, path):
    get = (probe or {}).get("httpGet") or {}
    port = get.get("port")
    port = cports.get(port, port)
    return get.get("path") == path and port == PORT


check("k8s: readinessProbe GET /readyz", probe_ok(ctr.get("readinessProbe"), "/readyz"))
check("k8s: livenessProbe GET /healthz", probe_ok(ctr.get("livenessProbe"), "/healthz"))
res = ctr.get("resources") or {}
check("k8s: resource requests and limits",
      all(k in (res.get(s) or {}) for s in ("requests", "limits")
          for k in ("cpu", "memory")))
mounts = {m["name"]: m["mountPath"] for m in ctr.get("volumeMounts") or []}
kvols = {v["name"]: v for v in pod.get("volumes") or []}
pvc = (by_kind.get("PersistentVolumeClaim") or [{}])[0]
data_vol = [n for n, v in kvols.items() if "persistentVolumeClaim" in v]
check("k8s: the PVC is mounted at the data dir",
      len(data_vol) == 1 and mounts.get(data_vol[0]) == DATA and
      kvols[data_vol[0]]["persistentVolumeClaim"]["claimName"] ==
      pvc.get("metadata", {}).get("name"))
secret = (by_kind.get("Secret") or [{}])[0]
sec_vol = [n for n, v in kvols.items() if "secret" in v]
tokfile = kenv.get("LSMI_TOKENS_FILE") or ""
keys = set((secret.get("stringData") or {}) | (secret.get("data") or {}))
check("k8s: LSMI_TOKENS_FILE is a key of the mounted Secret",
      len(sec_vol) == 1 and
      kvols[sec_vol[0]]["secret"]["secretName"] == secret.get("metadata", {}).get("name") and
      os.path.dirname(tokfile) == mounts.get(sec_vol[0]) and
      os.path.basename(tokfile) in keys, tokfile)
sc = pod.get("securityContext") or {}
check("k8s: runs as the image's user, non-root",
      sc.get("runAsNonRoot") is True and sc.get("runAsUser") == UID)
check("k8s: command as the image's CMD",
      ctr.get("command") in (None, ["lsmi", "serve"]))
service = (by_kind.get("Service") or [{}])[0]
sports = (service.get("spec") or {}).get("ports") or [{}]
tp = sports[0].get("targetPort")
check("k8s: Service targets the container port",
      cports.get(tp, tp) == PORT and sports[0].get("port") == PORT)
labels = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
sel = (service.get("spec") or {}).get("selector") or {}
check("k8s: Service selects the Deployment's pods",
      bool(sel) and all(labels.get(k) == v for k, v in sel.items()))

# --------------------------------------------------------------------------
# The cluster mode (doc/cluster.md): docker-compose.cluster.yml and
# k8s-cluster/, nodes that share one PostgreSQL, each with its own caches.
try:
    ccompose = yaml.safe_load(read("deploy/docker-compose.cluster.yml"))
    check("docker-compose.cluster.yml parses as YAML", isinstance(ccompose, dict))
except yaml.YAMLError as e:
    ccompose = {}
    check("docker-compose.cluster.yml parses as YAML", False, str(e))
if shutil.which("docker-compose"):
    r = subprocess.run(["docker-compose", "-f",
                        os.path.join(ROOT, "deploy", "docker-compose.cluster.yml"),
                        "config", "-q"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, POSTGRES_PASSWORD="x"))
    check("`docker-compose config` accepts docker-compose.cluster.yml",
          r.returncode == 0, r.stderr.strip())
known("docker-compose.cluster.yml",
      env_vars_in(read("deploy/docker-compose.cluster.yml")))
cservices = ccompose.get("services") or {}
pg = cservices.get("postgres") or {}
check("cluster compose: a postgres service",
      str(pg.get("image", "")).startswith("postgres:"), pg.get("image"))
nodes = {n: v for n, v in cservices.items()
         if (v.get("command") or []) == ["lsmi", "serve"]}
check("cluster compose: several lsmi nodes", len(nodes) >= 2, sorted(nodes))
nenv = {}
for n, v in nodes.items():
    e = v.get("environment") or {}
    nenv[n] = dict(x.split("=", 1) for x in e) if isinstance(e, list) else e
check("cluster compose: every node's LSMI_STORE is the postgres service",
      all("host=postgres " in str(e.get("LSMI_STORE", "")) for e in nenv.values()),
      [e.get("LSMI_STORE") for e in nenv.values()])
check("cluster compose: the nodes have names of their own",
      len({e.get("LSMI_NODE") for e in nenv.values()}) == len(nodes))
check("cluster compose: LSMI_LISTEN on the default port, data dir as the image",
      all(port_of(str(e.get("LSMI_LISTEN", ":0"))) == PORT and
          e.get("LSMI_DATA_DIR") == DATA for e in nenv.values()))
hports = [str(p).rsplit(":", 1)[0] for v in nodes.values()
          for p in v.get("ports") or []]
check("cluster compose: each node published on a host port of its own",
      len(hports) == len(nodes) == len(set(hports)), hports)
# A shared named volume at the data dir would be one lock for all nodes:
# each keeps the image's own (anonymous) volume for its caches.
check("cluster compose: no node mounts a named volume at the data dir",
      not any(str(x).split(":")[1:2] == [DATA] for v in nodes.values()
              for x in v.get("volumes") or []))
check("cluster compose: the nodes' healthcheck is `lsmi probe` on /readyz",
      all((v.get("healthcheck") or {}).get("test", [])[:3] ==
          ["CMD", "lsmi", "probe"] and
          f"127.0.0.1:{PORT}/readyz" in " ".join(v["healthcheck"]["test"])
          for v in nodes.values()))

cdocs = []
for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "k8s-cluster", "*.yaml"))):
    name = os.path.relpath(path, ROOT)
    try:
        with open(path, encoding="utf-8") as f:
            cdocs += [d for d in yaml.safe_load_all(f) if d]
        check(f"{name} parses as YAML", True)
    except yaml.YAMLError as e:
        check(f"{name} parses as YAML", False, str(e))
    with open(path, encoding="utf-8") as f:
        known(name, env_vars_in(f.read()))
ckind = {}
for d in cdocs:
    ckind.setdefault(d.get("kind"), []).append(d)
ckust = (ckind.get("Kustomization") or [{}])[0]
cfiles = {os.path.basename(p) for p in
          glob.glob(os.path.join(ROOT, "deploy", "k8s-cluster", "*.yaml"))}
check("k8s-cluster: kustomization lists every manifest",
      set(ckust.get("resources") or []) == cfiles - {"kustomization.yaml"})
if shutil.which("kubectl"):
    try:
        r = subprocess.run(["kubectl", "kustomize",
                            os.path.join(ROOT, "deploy", "k8s-cluster")],
                           capture_output=True, text=True, timeout=60)
        kinds = sorted(d.get("kind") for d in yaml.safe_load_all(r.stdout) if d) \
            if r.returncode == 0 else r.stderr.strip()
        check("`kubectl kustomize deploy/k8s-cluster` renders its objects",
              kinds == ["Deployment", "Secret", "Secret", "Service"], kinds)
    except (OSError, subprocess.TimeoutExpired, yaml.YAMLError) as e:
        check("`kubectl kustomize deploy/k8s-cluster` runs", False, str(e))
cdep = (ckind.get("Deployment") or [{}])[0]
cpod = ((cdep.get("spec") or {}).get("template") or {}).get("spec") or {}
cctr = (cpod.get("containers") or [{}])[0]
check("k8s-cluster: a Deployment of several replicas, rolling",
      (cdep.get("spec") or {}).get("replicas", 1) >= 2 and
      ((cdep.get("spec") or {}).get("strategy") or {}).get("type") == "RollingUpdate")
check("k8s-cluster: no PersistentVolumeClaim (the state is the database's)",
      "PersistentVolumeClaim" not in ckind)
csecrets = {d["metadata"]["name"]: set((d.get("stringData") or {}) |
                                       (d.get("data") or {}))
            for d in ckind.get("Secret") or []}
cenv = {e["name"]: e for e in cctr.get("env") or []}
ref = ((cenv.get("LSMI_STORE") or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
check("k8s-cluster: LSMI_STORE comes from a key of a Secret",
      ref.get("key") in csecrets.get(ref.get("name"), set()), ref)
check("k8s-cluster: LSMI_LISTEN on the default port, data dir as the image",
      port_of(str((cenv.get("LSMI_LISTEN") or {}).get("value", ":0"))) == PORT and
      (cenv.get("LSMI_DATA_DIR") or {}).get("value") == DATA)
ccports = {p.get("name"): p.get("containerPort") for p in cctr.get("ports") or []}


def cprobe_ok(probe, path):
    get = (probe or {}).get("httpGet") or {}
    return get.get("path") == path and ccports.get(get.get("port"), get.get("port")) == PORT


check("k8s-cluster: readinessProbe GET /readyz",
      cprobe_ok(cctr.get("readinessProbe"), "/readyz"))
check("k8s-cluster: livenessProbe GET /healthz",
      cprobe_ok(cctr.get("livenessProbe"), "/healthz"))
cmounts = {m["name"]: m["mountPath"] for m in cctr.get("volumeMounts") or []}
cvols = {v["name"]: v for v in cpod.get("volumes") or []}
check("k8s-cluster: the data dir is an emptyDir (the node's caches)",
      any(p == DATA and "emptyDir" in cvols.get(n, {}) for n, p in cmounts.items()))
ctok = (cenv.get("LSMI_TOKENS_FILE") or {}).get("value") or ""
tvol = [n for n, v in cvols.items() if "secret" in v]
check("k8s-cluster: LSMI_TOKENS_FILE is a key of the mounted Secret",
      len(tvol) == 1 and os.path.dirname(ctok) == cmounts.get(tvol[0]) and
      os.path.basename(ctok) in csecrets.get(cvols[tvol[0]]["secret"]["secretName"], set()),
      ctok)
csc = cpod.get("securityContext") or {}
check("k8s-cluster: runs as the image's user, non-root",
      csc.get("runAsNonRoot") is True and csc.get("runAsUser") == UID)
csvc = (ckind.get("Service") or [{}])[0]
clabels = ((cdep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
csel = (csvc.get("spec") or {}).get("selector") or {}
check("k8s-cluster: Service selects the Deployment's pods on the port",
      bool(csel) and all(clabels.get(k) == v for k, v in csel.items()) and
      ((csvc.get("spec") or {}).get("ports") or [{}])[0].get("port") == PORT)

# --------------------------------------------------------------------------
# systemd unit
unit = read("deploy/lsmi.service")
uenv = dict(re.findall(r"^Environment=(LSMI_[A-Z0-9_]+)=(\S+)", unit, re.M))
known("deploy/lsmi.service", env_vars_in(unit))
check("unit: LSMI_LISTEN is loopback on the default port",
      uenv.get("LSMI_LISTEN") == default_listen, uenv.get("LSMI_LISTEN"))
check("unit: data dir is its StateDirectory",
      "StateDirectory=lsmi" in unit and uenv.get("LSMI_DATA_DIR") == "%S/lsmi")
known("deploy/README.md", env_vars_in(read("deploy/README.md")))
# The man page, doc/*.md and the README are checked against the code by
# tests/deploy/docs.py.

finish()
