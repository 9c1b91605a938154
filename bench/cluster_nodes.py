#!/usr/bin/env python3
"""bench/cluster_nodes.py — the cluster mode with real daemons: what the
issue's performance paragraph asks (figures in doc/cluster.md).

Run through tests/cluster/pg.sh (make bench-cluster-nodes), which gives a
throwaway PostgreSQL in LSMI_TEST_PG_DSN. For each of --rounds rounds, on
a fresh database each time:

  batch    --jobs demo-size jobs (the paper's demo: 2,000 samples, the
           published recipe, threads 1; --param NAME=VALUE adds one, e.g.
           --param folds=3) queued at once, timed from the
           first job's created_at to the last one's finished_at, on
           (a) one SQLite node, (b) one cluster node, (c) two cluster
           nodes; every node has one worker. (b) / (a) is the cluster
           mode's overhead, (b) / (c) what a second node brings.
  latency  --samples single jobs queued one at a time through node A
           while node B idles too: started_at - created_at of each (the
           NOTIFY, the claim, the unit's start; ms resolution).
  cpu      for each batch, the CPU time a job (/proc/PID/stat, user and
           system) of the daemons, of PostgreSQL's processes and of the
           rest (this script's polling among it), and how busy the
           machine's cores were (/proc/stat): where two nodes' time goes.

Prints one line per measurement and a summary; the medians over the
rounds are what doc/cluster.md quotes.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "api"))
from lsmiapi import SESSION, Daemon, synth  # noqa: E402

DSN = os.environ.get("LSMI_TEST_PG_DSN")


def psql():
    import glob
    import shutil
    for b in sorted(glob.glob("/usr/lib/postgresql/*/bin")):
        if os.access(os.path.join(b, "psql"), os.X_OK):
            return os.path.join(b, "psql")
    return shutil.which("psql")


_n = [0]


def new_database():
    _n[0] += 1
    name = "bench_%d_%d" % (os.getpid(), _n[0])
    subprocess.run([psql(), DSN, "-q", "-c", "CREATE DATABASE " + name],
                   check=True, stdout=subprocess.DEVNULL)
    return "%s dbname=%s" % (DSN, name)


def stamp(s):
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def cluster_node(dsn, name):
    return Daemon(args=["--store", dsn, "--node", name, "--workers", "1"])


def upload(d, data):
    r = d.upload(data)
    assert r.status in (200, 201), (r.status, r.body)
    return r.json()["id"]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_by_process():
    """{pid: (name, CPU seconds)} of every process now."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        f = st[st.rindex(")") + 2:].split()
        out[pid] = (name, (int(f[11]) + int(f[12])) / TICK)
    return out


def machine_busy():
    """(busy, total) seconds of all cores since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / TICK, sum(v) / TICK


def group(name):
    if name.startswith("postgres") or name.startswith("postmaster"):
        return "pg"
    return "lsmi" if name.startswith("lsmi") else "other"


class Cpu:
    """CPU time spent from start() to stop(), by group (processes alive
    at stop; a process that ended meanwhile is not counted)."""

    def start(self):
        self.p0, self.m0 = cpu_by_process(), machine_busy()

    def stop(self):
        p1, m1 = cpu_by_process(), machine_busy()
        self.by = {"lsmi": 0.0, "pg": 0.0, "other": 0.0}
        for pid, (name, t) in p1.items():
            t0 = self.p0.get(pid, (name, 0.0))[1]
            self.by[group(name)] += t - t0
        self.busy = (m1[0] - self.m0[0]) / max(m1[1] - self.m0[1], 1e-9)


CPU = {"sqlite": [], "one": [], "two": []}


PARAMS = {}


def batch(nodes, data, jobs, key=None):
    """Seconds from the first created_at to the last finished_at of `jobs`
    demo jobs queued at once through the nodes in turn."""
    ds = upload(nodes[0], data)
    cpu = Cpu()
    cpu.start()
    ids = []
    for i in range(jobs):
        r = nodes[i % len(nodes)].submit(ds, dict(PARAMS, seed=i, threads=1))
        assert r.status == 202, (r.status, r.body)
        ids.append(r.json()["id"])
    done = [nodes[0].wait_job(j, timeout=600) for j in ids]
    cpu.stop()
    if key:
        CPU[key].append(cpu)
    assert all(j["state"] == "succeeded" for j in done), done
    return (max(stamp(j["finished_at"]) for j in done) -
            min(stamp(j["created_at"]) for j in done))


def latency(nodes, data, samples):
    """started_at - created_at of single jobs, in ms."""
    ds = upload(nodes[0], data)
    out = []
    for i in range(samples):
        r = nodes[0].submit(ds, {"seed": i, "threads": 1,
                                 "epochs_discriminator": 2,
                                 "epochs_entropy": 2})
        assert r.status == 202, (r.status, r.body)
        j = nodes[0].wait_job(r.json()["id"])
        assert j["state"] == "succeeded", j
        out.append(1000 * (stamp(j["started_at"]) - stamp(j["created_at"])))
        time.sleep(0.05)  # both nodes idle again
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--param", action="append", default=[],
                    metavar="NAME=VALUE",
                    help="a parameter added to every batch job's (VALUE "
                    "as JSON when it parses, else a string)")
    a = ap.parse_args()
    import json
    for kv in a.param:
        name, _, value = kv.partition("=")
        try:
            PARAMS[name] = json.loads(value)
        except ValueError:
            PARAMS[name] = value
    if not DSN:
        sys.exit("run through tests/cluster/pg.sh (LSMI_TEST_PG_DSN)")
    data = synth(os.path.join(SESSION, "demo.npz"), n=2000, seed=1)
    res = {"sqlite": [], "one": [], "two": []}
    lat = []
    for rnd in range(a.rounds):
        with Daemon(args=["--workers", "1"]) as d:
            res["sqlite"].append(batch([d], data, a.jobs, "sqlite"))
        dsn = new_database()
        with cluster_node(dsn, "a") as d:
            res["one"].append(batch([d], data, a.jobs, "one"))
        dsn = new_database()
        with cluster_node(dsn, "a") as d1, cluster_node(dsn, "b") as d2:
            res["two"].append(batch([d1, d2], data, a.jobs, "two"))
            lat += latency([d1, d2], data, a.samples // a.rounds)
        print("round %d: %d jobs: sqlite %.2f s, one node %.2f s, two nodes "
              "%.2f s" % (rnd + 1, a.jobs, res["sqlite"][-1], res["one"][-1],
                          res["two"][-1]), flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    print("median of %d rounds: sqlite %.2f s, one node %.2f s (%+.1f%%), "
          "two nodes %.2f s (%.2fx one node)" %
          (a.rounds, med["sqlite"], med["one"],
           100 * (med["one"] / med["sqlite"] - 1), med["two"],
           med["one"] / med["two"]))
    for k in ("sqlite", "one", "two"):
        c = CPU[k]
        per = {g: 1000 * statistics.median(x.by[g] for x in c) / a.jobs
               for g in ("lsmi", "pg", "other")}
        print("cpu a job, %s: daemons %.1f ms, postgres %.1f ms, other %.1f "
              "ms; cores busy %.0f%%" %
              (k, per["lsmi"], per["pg"], per["other"],
               100 * statistics.median(x.busy for x in c)))
    if not lat:
        return
    print("queued to started on an idle node, %d jobs: p50 %.0f ms, p90 "
          "%.0f ms, p99 %.0f ms, max %.0f ms" %
          (len(lat), pct(lat, 0.5), pct(lat, 0.9), pct(lat, 0.99), max(lat)))


if __name__ == "__main__":
    main()
