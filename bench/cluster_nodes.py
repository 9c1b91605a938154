#!/usr/bin/env python3
"""bench/cluster_nodes.py — the cluster mode with real daemons: what the
issue's performance paragraph asks (figures in doc/cluster.md).

Run through tests/cluster/pg.sh (make bench-cluster-nodes), which gives a
throwaway PostgreSQL in LSMI_TEST_PG_DSN. For each of --rounds rounds, on
a fresh database each time:

  batch    --jobs demo-size jobs (the paper's demo: 2,000 samples, the
           published recipe, threads 1) queued at once, timed from the
           first job's created_at to the last one's finished_at, on
           (a) one SQLite node, (b) one cluster node, (c) two cluster
           nodes; every node has one worker. (b) / (a) is the cluster
           mode's overhead, (b) / (c) what a second node brings.
  latency  --samples single jobs queued one at a time through node A
           while node B idles too: started_at - created_at of each (the
           NOTIFY, the claim, the unit's start; ms resolution).

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


def batch(nodes, data, jobs):
    """Seconds from the first created_at to the last finished_at of `jobs`
    demo jobs queued at once through the nodes in turn."""
    ds = upload(nodes[0], data)
    ids = []
    for i in range(jobs):
        r = nodes[i % len(nodes)].submit(ds, {"seed": i, "threads": 1})
        assert r.status == 202, (r.status, r.body)
        ids.append(r.json()["id"])
    done = [nodes[0].wait_job(j, timeout=600) for j in ids]
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
    a = ap.parse_args()
    if not DSN:
        sys.exit("run through tests/cluster/pg.sh (LSMI_TEST_PG_DSN)")
    data = synth(os.path.join(SESSION, "demo.npz"), n=2000, seed=1)
    res = {"sqlite": [], "one": [], "two": []}
    lat = []
    for rnd in range(a.rounds):
        with Daemon(args=["--workers", "1"]) as d:
            res["sqlite"].append(batch([d], data, a.jobs))
        dsn = new_database()
        with cluster_node(dsn, "a") as d:
            res["one"].append(batch([d], data, a.jobs))
        dsn = new_database()
        with cluster_node(dsn, "a") as d1, cluster_node(dsn, "b") as d2:
            res["two"].append(batch([d1, d2], data, a.jobs))
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
    print("queued to started on an idle node, %d jobs: p50 %.0f ms, p90 "
          "%.0f ms, p99 %.0f ms, max %.0f ms" %
          (len(lat), pct(lat, 0.5), pct(lat, 0.9), pct(lat, 0.99), max(lat)))


if __name__ == "__main__":
    main()
