#!/usr/bin/env python3
"""tests/cluster/test_nodes.py — the cluster mode with real daemons.

Several `lsmi serve --store …` nodes on free loopback ports share the
throwaway PostgreSQL of tests/cluster/pg.sh (LSMI_TEST_PG_DSN; each test
gets a database of its own), and a single SQLite node is the reference
their results must equal byte for byte. The tests read the nodes' logs:
every unit of work a node runs is logged ("event": "unit") when it is
claimed ("running", with its attempt) and when it ends ("succeeded" when
this node ended the job, "done" a member handed on, "cancelled", "lost",
"released", ...), which is how "exactly once" and "never at the same time"
are counted; "reporting" in between says its fit is over and its worker
free.

On an ASan build only the tests marked ASAN_TOO run (the others would take
several times as long and exercise nothing more of the daemon's memory);
there every node must stop with status 0 and no sanitizer report.

Run one test: tests/cluster/pg.sh tests/cluster/test_nodes.py test_cancel
Last line: "N passed, N failed, N skipped".
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
from lsmiapi import (ASAN, CLASSES, NAMED_KEYS, SESSION, SLOW,  # noqa: E402
                     Daemon, Skip, assert_problem, named_dataset, run_tests,
                     sse_events, synth)

DSN = os.environ.get("LSMI_TEST_PG_DSN")
WORK = os.path.join(SESSION, "work")
os.makedirs(WORK, exist_ok=True)

# Fits of a few hundredths of a second: the 20-job test and the races.
TINY = {"epochs_discriminator": 3, "epochs_entropy": 3, "threads": 1}
# A fit of a few seconds on this machine (the dataset is 2,000 rows): long
# enough to be caught running, then killed or cancelled.
LONG = {"epochs_discriminator": 1500, "epochs_entropy": 1500, "threads": 1}
SMALL = synth(os.path.join(WORK, "small.npz"), n=400)
DEMO = synth(os.path.join(WORK, "demo.npz"), n=2000, seed=3)

_dbs = [0]


def psql():
    """The psql of the server pg.sh runs."""
    for b in sorted(glob.glob("/usr/lib/postgresql/*/bin")):
        if os.access(os.path.join(b, "psql"), os.X_OK):
            return os.path.join(b, "psql")
    return shutil.which("psql")


def new_database():
    """A fresh database of the test's server; its DSN."""
    if not DSN:
        raise Skip("no PostgreSQL (tests/cluster/pg.sh sets "
                   "LSMI_TEST_PG_DSN)")
    _dbs[0] += 1
    name = "nodes_%d_%d" % (os.getpid(), _dbs[0])
    subprocess.run([psql(), DSN, "-q", "-c", "CREATE DATABASE " + name],
                   check=True, stdout=subprocess.DEVNULL)
    return "%s dbname=%s" % (DSN, name)


def sql(dsn, query):
    """The text psql prints of one query (unaligned, no headers)."""
    r = subprocess.run([psql(), dsn, "-At", "-c", query], check=True,
                       capture_output=True, text=True)
    return r.stdout.strip()


def node(dsn, name, lease=30, workers=1, args=(), env=None):
    """A cluster node (not started); d.name is its node name."""
    d = Daemon(args=["--store", dsn, "--node", name, "--lease-seconds",
                     str(lease), "--workers", str(workers),
                     "--shutdown-timeout", "2"] + list(args), env=env)
    d.name = name
    return d


def start_all(nodes):
    for n in nodes:
        n.start()
    return nodes


def stop_clean(nodes):
    """SIGTERM: every node exits 0, and under ASan without a report."""
    for n in nodes:
        if n.proc is None:
            continue
        rc = n.stop()
        log = n.log_text()
        assert "Sanitizer" not in log, log[-3000:]
        assert rc == 0, (rc, log[-2000:])


def events(d, kind="unit"):
    """The node's log lines of one event, as objects."""
    out = []
    for line in d.log_text().splitlines():
        if line.startswith("{") and '"event":"%s"' % kind in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def stamp(e):
    """A log line's ts as seconds."""
    import datetime
    t = datetime.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def runs(nodes):
    """Every unit run of the nodes: (job, member, attempt, node, start,
    end, how), end None while it runs (or its node died). A member whose
    report handed its node the combination ends "done" as the combination
    (member -1) begins."""
    out = []
    for d in nodes:
        open_ = {}
        for e in events(d):
            key = (e["job"], e["member"], e["attempt"])
            if e["state"] == "running":
                open_[key] = [e["job"], e["member"], e["attempt"], e["node"],
                              stamp(e), None, None]
            elif e["state"] == "combining":
                r = open_.pop((e["job"], e["from_member"], e["from_attempt"]))
                r[5], r[6] = stamp(e), "done"
                out.append(tuple(r))
                open_[key] = [e["job"], -1, e["attempt"], e["node"], stamp(e),
                              None, None]
            elif e["state"] in ("store_wait", "store_back", "lease_lost",
                                "reporting"):
                continue
            else:
                r = open_.pop(key)
                r[5], r[6] = stamp(e), e["state"]
                out.append(tuple(r))
        out += [tuple(r) for r in open_.values()]
    return out


def units_of(rs, job):
    """The runs of job by unit: {member: [runs]}."""
    by = {}
    for r in rs:
        if r[0] == job:
            by.setdefault(r[1], []).append(r)
    return by


def upload_retry(d, data, query="", token=None, deadline=60):
    """Uploads, trying again on 503 (Retry-After): the response."""
    end = time.time() + deadline * SLOW
    while True:
        try:
            r = d.upload(data, query, token=token)
        except OSError:
            r = None
        if r is not None and r.status != 503:
            return r
        if r is not None:
            assert r.header("Retry-After"), r.headers
        assert time.time() < end, "upload kept failing"
        time.sleep(0.2)


def upload_ok(d, data=SMALL, token=None):
    r = upload_retry(d, data, token=token)
    assert r.status in (200, 201), (r.status, r.body)
    return r.json()["id"]


def submit_ok(d, ds, params, key=None, token=None):
    end = time.time() + 60 * SLOW
    while True:
        r = d.submit(ds, params, key=key, token=token)
        if r.status != 503:
            break
        assert r.header("Retry-After") and key, (r.status, r.body)
        assert time.time() < end
        time.sleep(0.2)
    assert r.status == 202, (r.status, r.body)
    return r.json()["id"]


def wait_done(d, job, timeout=120, token=None):
    j = d.wait_job(job, timeout=timeout, token=token)
    assert j["state"] == "succeeded", j
    return j


def result_files(nodes, job):
    """The result files of job from the node that holds them (the node that
    ended it, or one that fetched them), as bytes by split."""
    for d in nodes:
        paths = [os.path.join(d.data_dir, "results", "%s.%s" % (job, s))
                 for s in ("train", "val")]
        if all(os.path.exists(p) for p in paths):
            return [open(p, "rb").read() for p in paths]
    raise AssertionError("no node holds the result files of " + job)


class Reference:
    """A single SQLite node that runs the same jobs on the same bytes."""

    def __init__(self):
        self.d = Daemon(args=["--workers", "1"]).start()
        self.ds = {}

    def results(self, data, params, query=""):
        """The result files and summary of params on data (uploaded with
        query), as the single node computes them."""
        key = hash(data)
        if key not in self.ds:
            r = upload_retry(self.d, data, query)
            assert r.status in (200, 201), (r.status, r.body)
            self.ds[key] = r.json()["id"]
        job = submit_ok(self.d, self.ds[key], params)
        j = wait_done(self.d, job)
        return result_files([self.d], job), j["summary"]

    def check(self, nodes, job, got, data, params, query=""):
        """The cluster's job (its record got, its files on one of nodes)
        gave what the single node gives: the same result files, byte for
        byte, and the same summary, which it returns."""
        files, summary = self.results(data, params, query)
        assert result_files(nodes, job) == files, (job, params)
        same_summary(got["summary"], summary)
        return summary

    def close(self):
        stop_clean([self.d])


def same_summary(a, b):
    for split in ("train", "val"):
        assert a[split] == b[split], (split, a[split], b[split])
    assert a["diagnostics"] == b["diagnostics"]
    assert a["warnings"] == b["warnings"]


# --------------------------------------------------------------------------

def test_twenty_jobs_three_nodes():
    """20 jobs submitted across 3 nodes: each runs exactly once, never on
    two nodes at once, on more than one node, and gives the single SQLite
    node's results byte for byte (files and, through a node that did not
    compute them, CSV pages)."""
    dsn = new_database()
    nodes = start_all([node(dsn, "n%d" % i) for i in range(3)])
    ref = Reference()
    try:
        ds = upload_ok(nodes[0])
        assert upload_retry(nodes[1], SMALL).status == 200  # the same bytes
        params = [dict(TINY, seed=i, hidden=16 + i % 3) for i in range(20)]
        jobs = [submit_ok(nodes[i % 3], ds, p) for i, p in enumerate(params)]
        got = {j: wait_done(nodes[(i + 1) % 3], j) for i, j in enumerate(jobs)}
        for j in got.values():
            assert j["attempts"] == 1, j
        rs = runs(nodes)
        for job in jobs:
            by = units_of(rs, job)  # one member: its unit ends the job
            assert sorted(by) == [0], by
            assert len(by[0]) == 1, by  # once
            assert by[0][0][6] == "succeeded", by
        assert len({r[3] for r in rs}) >= 2, rs  # spread over the nodes
        for i, job in enumerate(jobs):
            ref.check(nodes, job, got[job], SMALL, params[i])
        # A page through a node that did not end the job (it fetches the
        # files from the database) equals the reference's page.
        job = jobs[0]
        ran = [r[3] for r in rs if r[0] == job][0]
        other = [d for d in nodes if d.name != ran][0]
        page = other.request("GET", "/v1/jobs/%s/results?split=all&format=csv"
                             % job)
        assert page.status == 200, page.body
        rjob = submit_ok(ref.d, ref.ds[hash(SMALL)], params[0])
        wait_done(ref.d, rjob)
        rpage = ref.d.request("GET", "/v1/jobs/%s/results?split=all&format=csv"
                              % rjob)
        assert page.body == rpage.body
        stop_clean(nodes)
    finally:
        ref.close()


def test_never_twice():
    """Rounds of bursts over 3 nodes of 2 workers: every unit is claimed
    exactly once, and no two runs of one job overlap (from the logs)."""
    dsn = new_database()
    nodes = start_all([node(dsn, "r%d" % i, workers=2) for i in range(3)])
    ds = upload_ok(nodes[0])
    jobs = []
    for rnd in range(4):
        burst = [submit_ok(nodes[(rnd + i) % 3], ds,
                           dict(TINY, seed=100 * rnd + i, epochs_entropy=1,
                                epochs_discriminator=1,
                                ensemble=1 + (i % 3 == 0)))
                 for i in range(12)]
        for j in burst:
            wait_done(nodes[rnd % 3], j)
        jobs += burst
    rs = runs(nodes)
    for job in jobs:
        by = units_of(rs, job)
        for unit, rr in by.items():
            assert len(rr) == 1, rr  # claimed exactly once
        # A one-member job is one unit, which ends the job.
        if len(by) == 1:
            assert sorted(by) == [0] and by[0][0][6] == "succeeded", by
            continue
        assert sorted(by) == [-1, 0, 1], by
        for unit, rr in by.items():
            assert rr[0][6] == ("succeeded" if unit < 0 else "done"), rr
        # An ensemble's combination goes to the node that reported the
        # last member, after every member began. (A member's end is logged
        # by its node's loop after the report committed, so ends logged on
        # two nodes need not be in the order of their commits.)
        first = max(r[4] for u, v in by.items() if u >= 0 for r in v)
        assert by[-1][0][4] >= first, by
        assert by[-1][0][3] in {r[3] for u, v in by.items() if u >= 0
                                for r in v}, by
    assert sum(1 for r in rs if r[6] == "succeeded") == len(jobs)
    stop_clean(nodes)


def test_kill9_takeover():
    """kill -9 of the node running a fit: another node runs it again from
    the start once the lease lapses, attempts says 2, and the result is the
    single node's, byte for byte."""
    dsn = new_database()
    nodes = start_all([node(dsn, "k%d" % i, lease=2) for i in range(3)])
    ref = Reference()
    try:
        ds = upload_ok(nodes[0], DEMO)
        params = dict(LONG, seed=5)
        job = submit_ok(nodes[0], ds, params)
        end = time.time() + 30
        victim = None
        while victim is None and time.time() < end:
            rs = [r for r in runs(nodes) if r[0] == job]
            victim = [d for d in nodes if rs and d.name == rs[0][3]]
            victim = victim[0] if victim else None
            time.sleep(0.05)
        assert victim is not None, "the job never ran"
        time.sleep(0.5)
        assert victim.kill9() == -9
        t_kill = time.time()
        alive = [d for d in nodes if d is not victim]
        j = wait_done(alive[0], job, timeout=120)
        assert j["attempts"] == 2, j
        rs = [r for r in runs(nodes) if r[0] == job and r[1] == 0]
        by = {r[3] for r in rs}
        assert victim.name in by and len(by) == 2, rs
        assert [r[6] for r in rs if r[3] == victim.name] == [None], rs
        second = [r for r in rs if r[2] == 2][0]
        print("failover: the unit ran again %.2f s after the kill "
              "(lease 2 s)" % (second[4] - t_kill))
        # The lease (2 s) lapsed, then a safety look took the unit.
        assert second[4] - t_kill < 2 + 2 + 3 * SLOW, (second, t_kill)
        ref.check(alive, job, j, DEMO, params)
        stop_clean(alive)
    finally:
        ref.close()


def test_cancel_across_nodes():
    """A cancel sent to one node stops the fit on another within a second;
    the job is cancelled at once, everywhere, and the node takes new work."""
    dsn = new_database()
    nodes = start_all([node(dsn, "c%d" % i) for i in range(2)])
    ds = upload_ok(nodes[0], DEMO)
    job = submit_ok(nodes[0], ds, LONG)
    end = time.time() + 30 * SLOW
    rs = []
    while not rs and time.time() < end:
        rs = [r for r in runs(nodes) if r[0] == job]
        time.sleep(0.05)
    assert rs, "the job never ran"
    runner = [d for d in nodes if d.name == rs[0][3]][0]
    other = [d for d in nodes if d is not runner][0]
    time.sleep(0.3)
    r = other.request("DELETE", "/v1/jobs/" + job)
    t_cancel = time.time()
    assert r.status == 202, (r.status, r.body)
    assert r.json()["state"] == "cancelled", r.body
    assert runner.job(job)["state"] == "cancelled"
    stopped = None
    while stopped is None and time.time() < t_cancel + 10 * SLOW:
        ends = [e for e in events(runner) if e["job"] == job and
                e["state"] == "cancelled"]
        stopped = stamp(ends[0]) if ends else None
        time.sleep(0.05)
    assert stopped is not None, runner.log_text()[-2000:]
    print("cancel: the fit stopped on the other node %.3f s after the "
          "DELETE returned" % (stopped - t_cancel))
    assert stopped - t_cancel < 1.0 * SLOW, stopped - t_cancel
    # Ended: a second DELETE deletes it, as on a single node.
    assert other.request("DELETE", "/v1/jobs/" + job).status == 204
    assert_problem(runner.request("GET", "/v1/jobs/" + job), 404)
    # The worker is free again: the next job runs (on either node).
    wait_done(runner, submit_ok(runner, ds, TINY))
    stop_clean(nodes)


test_cancel_across_nodes.ASAN_TOO = True


def test_tenants_across_nodes():
    """Tokens map to tenants on every node alike: what one tenant uploads
    or queues through one node, another tenant cannot see, use or cancel
    through another."""
    dsn = new_database()
    ta, tb = "token-of-alice-0123", "token-of-bob-01234"
    env = {"LSMI_TOKENS": "%s=alice,%s=bob" % (ta, tb)}
    a, b = start_all([node(dsn, "t%d" % i, env=env) for i in range(2)])
    ds = upload_ok(a, SMALL, token=ta)
    assert b.request("GET", "/v1/datasets/" + ds, token=ta).status == 200
    assert_problem(b.request("GET", "/v1/datasets/" + ds, token=tb), 404)
    r = b.submit(ds, TINY, token=tb)
    assert_problem(r, 422, "dataset_id")
    job = submit_ok(b, ds, TINY, token=ta)
    assert_problem(a.request("GET", "/v1/jobs/" + job, token=tb), 404)
    assert_problem(a.request("DELETE", "/v1/jobs/" + job, token=tb), 404)
    assert_problem(a.request("GET", "/v1/jobs/%s/results" % job, token=tb),
                   404)
    wait_done(a, job, token=ta)
    assert a.request("GET", "/v1/jobs", token=tb).json()["total"] == 0
    assert b.request("GET", "/v1/jobs", token=ta).json()["total"] == 1
    assert b.request("GET", "/v1/datasets", token=tb).json()["total"] == 0
    # bob's own upload of the same bytes is his own dataset.
    ds_b = upload_ok(b, SMALL, token=tb)
    assert ds_b != ds
    assert a.request("GET", "/v1/jobs/%s/results" % job,
                     token=ta).status == 200
    stop_clean([a, b])


test_tenants_across_nodes.ASAN_TOO = True


def cached(d, job):
    """The result files of job in node d's cache."""
    return sorted(glob.glob(os.path.join(d.data_dir, "results", job + ".*")))


def age(paths, seconds):
    """Makes files look last used `seconds` ago (atime and mtime)."""
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def sweep(d, what="cache_sweep"):
    """SIGHUP: node d sweeps now; its next `what` log line."""
    had = len(events(d, what))
    d.proc.send_signal(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while len(events(d, what)) == had:
        assert time.time() < end, "no %s after SIGHUP" % what
        time.sleep(0.05)
    return events(d, what)[-1]


def test_delete_finished_job():
    """DELETE of a finished job through any node: the job, its result blobs,
    members and idempotency key leave the database at once, every node
    answers 404, the node that deleted it drops its cached files, and the
    other nodes' cached copies go with their next cache sweep (hourly, or
    SIGHUP; a file used in the last hour stays). Deleting a dataset takes
    its finished jobs along, unless keep_jobs=true."""
    dsn = new_database()
    a, b = start_all([node(dsn, "x%d" % i) for i in range(2)])
    ds = upload_ok(a)
    job = submit_ok(a, ds, TINY, key="the-key")
    wait_done(a, job)
    for d in (a, b):  # both nodes cache the result files
        assert d.request("GET", "/v1/jobs/%s/results" % job).status == 200
        assert len(cached(d, job)) == 2, d.name
    assert sql(dsn, "SELECT count(*) FROM blobs WHERE key LIKE "
               "'result/%s/%%'" % job) == "2"
    r = b.request("DELETE", "/v1/jobs/" + job)
    assert r.status == 204, (r.status, r.body)
    for d in (a, b):
        assert_problem(d.request("GET", "/v1/jobs/" + job), 404)
        assert_problem(d.request("GET", "/v1/jobs/%s/results" % job), 404)
        assert_problem(d.request("DELETE", "/v1/jobs/" + job), 404)
    for table, where in (("jobs", "id"), ("members", "job_id"),
                         ("idempotency", "job_id")):
        assert sql(dsn, "SELECT count(*) FROM %s WHERE %s = '%s'"
                   % (table, where, job)) == "0", table
    assert sql(dsn, "SELECT count(*) FROM blobs WHERE key LIKE 'result/%'") \
        == "0"
    assert cached(b, job) == []  # the deleting node's copies, at once
    # The other node still has its copies, never served; a sweep keeps
    # what was used within the hour, and removes them once they are older.
    kept = cached(a, job)
    assert sweep(a)["files_removed"] == 0
    assert cached(a, job) == kept
    age(kept, 2 * 3600)
    e = sweep(a)
    assert e["files_removed"] == 2, e
    assert cached(a, job) == []
    # The key is free again: a new job under it.
    job2 = submit_ok(a, ds, TINY, key="the-key")
    assert job2 != job
    wait_done(b, job2)
    job3 = submit_ok(b, ds, dict(TINY, seed=1))
    wait_done(b, job3)
    # A dataset deleted with keep_jobs=true keeps its finished jobs.
    ds2 = upload_ok(b, synth(os.path.join(WORK, "other.npz"), n=300, seed=9))
    job4 = submit_ok(b, ds2, TINY)
    wait_done(a, job4)
    r = a.request("DELETE", "/v1/datasets/%s?keep_jobs=true" % ds2)
    assert r.status == 204, (r.status, r.body)
    assert a.request("GET", "/v1/jobs/%s/results" % job4).status == 200
    # Deleted without it, a dataset takes its finished jobs along.
    r = b.request("DELETE", "/v1/datasets/" + ds)
    assert r.status == 204, (r.status, r.body)
    for j in (job2, job3):
        assert_problem(a.request("GET", "/v1/jobs/" + j), 404)
        assert cached(b, j) == []
    assert sql(dsn, "SELECT count(*) FROM jobs") == "1"  # job4
    assert sql(dsn, "SELECT count(*) FROM blobs WHERE key NOT LIKE "
               "'result/%s/%%'" % job4) == "0"
    stop_clean([a, b])


test_delete_finished_job.ASAN_TOO = True


def test_cache_bound():
    """--cache-bytes bounds a node's caches: past it, the least recently
    used files that the database can give back go (a file used within the
    last minute stays), and are fetched again, the same bytes, when they
    are needed. A cache hit counts as a use."""
    dsn = new_database()
    worker = node(dsn, "z0").start()  # runs every job
    ds = upload_ok(worker)
    jobs = [submit_ok(worker, ds, dict(TINY, seed=i)) for i in range(3)]
    for j in jobs:
        wait_done(worker, j)
    one = sum(len(x) for x in result_files([worker], jobs[0]))
    # A second node, started once every job has ended (it runs none),
    # bounded to two jobs' result files.
    reader = node(dsn, "z1", args=["--cache-bytes", str(2 * one + 100)])
    reader.start()
    pages = {}
    for j in jobs[:2]:
        r = reader.request("GET", "/v1/jobs/%s/results?split=all&format=csv"
                           % j)
        assert r.status == 200, r.body
        pages[j] = r.body
        assert len(cached(reader, j)) == 2
    age(cached(reader, jobs[0]), 600)
    age(cached(reader, jobs[1]), 300)
    # A hit on the older one makes the other the least recently used.
    assert reader.request("GET", "/v1/jobs/%s" % jobs[0]).status == 200
    r = reader.request("GET", "/v1/jobs/%s/results" % jobs[2])
    assert r.status == 200, r.body
    assert cached(reader, jobs[1]) == [], os.listdir(
        os.path.join(reader.data_dir, "results"))
    assert len(cached(reader, jobs[0])) == 2
    assert len(cached(reader, jobs[2])) == 2
    e = events(reader, "cache_evict")
    assert sum(x["files_removed"] for x in e) == 2, e
    # Evicted, fetched again: the same page.
    r = reader.request("GET", "/v1/jobs/%s/results?split=all&format=csv"
                       % jobs[1])
    assert r.status == 200 and r.body == pages[jobs[1]]
    # Nothing used within the minute goes, whatever the bound says.
    assert len(cached(reader, jobs[1])) == 2
    assert len(cached(reader, jobs[2])) == 2
    # /metrics counts the node's caches.
    m = reader.request("GET", "/metrics").body.decode()
    assert '\nlsmi_data_dir_bytes{kind="results"} %d\n' % (3 * one) in m, m
    assert '\nlsmi_data_dir_bytes{kind="datasets"} 0\n' in m, m
    stop_clean([worker, reader])


test_cache_bound.ASAN_TOO = True


def test_retention_one_node_at_a_time():
    """--retain-days over the cluster store: a job that finished longer ago
    is deleted with its result blobs and keys, by one node at a time (an
    advisory lock: a node that finds another sweeping leaves it the work),
    whose copies go at once; the other nodes' copies go with their cache
    sweeps. Younger jobs stay."""
    dsn = new_database()
    a, b = start_all([node(dsn, "p%d" % i, args=["--retain-days", "2"])
                      for i in range(2)])
    for d in (a, b):  # the sweep of the start, a second after it
        end = time.time() + 10 * SLOW
        while not events(d, "retention"):
            assert time.time() < end, "no sweep at the start"
            time.sleep(0.05)
    ds = upload_ok(a)
    old = submit_ok(a, ds, TINY, key="key-old")
    young = submit_ok(b, ds, dict(TINY, seed=1), key="key-young")
    for j in (old, young):
        wait_done(a, j)
        for d in (a, b):  # both nodes cache both jobs' files
            assert d.request("GET", "/v1/jobs/%s/results" % j).status == 200
    day = 86400
    sql(dsn, "UPDATE jobs SET finished_at = finished_at - %d WHERE id = '%s'"
        % (3 * day, old))
    sql(dsn, "UPDATE idempotency SET created_at = created_at - %d"
        % (3 * day))
    # Another node sweeping (its lock held): this one leaves it the work.
    holder = subprocess.Popen([psql(), dsn, "-q", "-c",
                               "SELECT pg_advisory_xact_lock(1819503978), "
                               "pg_sleep(3)"], stdout=subprocess.DEVNULL)
    try:
        end = time.time() + 10 * SLOW
        while sql(dsn, "SELECT count(*) FROM pg_locks WHERE locktype = "
                  "'advisory' AND objid = 1819503978 AND granted") != "1":
            assert time.time() < end, "the lock was not taken"
            time.sleep(0.05)
        e = sweep(a, "retention")
        assert e["other_node_sweeping"] and e["jobs_deleted"] == 0, e
    finally:
        holder.wait()
    assert a.job(old)["state"] == "succeeded"
    e = sweep(a, "retention")
    assert not e["other_node_sweeping"], e
    assert e["jobs_deleted"] == 1 and e["keys_deleted"] == 1, e
    for d in (a, b):
        assert_problem(d.request("GET", "/v1/jobs/" + old), 404)
        assert d.job(young)["state"] == "succeeded"
    assert sql(dsn, "SELECT count(*) FROM blobs WHERE key LIKE "
               "'result/%s/%%'" % old) == "0"
    assert sql(dsn, "SELECT count(*) FROM idempotency") == "0"
    assert cached(a, old) == []
    assert len(cached(b, old)) == 2  # until b's cache sweep
    age(cached(b, old), 2 * 3600)
    assert sweep(b, "retention")["jobs_deleted"] == 0
    end = time.time() + 10 * SLOW
    while cached(b, old):
        assert time.time() < end, "b kept the deleted job's files"
        time.sleep(0.05)
    assert len(cached(b, young)) == 2
    # The young job's key was old: a new job under it.
    assert submit_ok(b, ds, dict(TINY, seed=1), key="key-young") != young
    stop_clean([a, b])


def test_tenant_quota_across_nodes():
    """--tenant-quota-bytes over the cluster store: what a tenant stores
    (its datasets and its jobs' result files, counted in the database) is
    bounded on every node alike: past it, uploads and jobs answer 507 on
    any node; the other tenant is not touched; deleting makes room."""
    dsn = new_database()
    other = synth(os.path.join(WORK, "quota-other.npz"), n=400, seed=5)
    third = synth(os.path.join(WORK, "quota-third.npz"), n=400, seed=9)
    quota = len(SMALL) + len(other) + 2000  # a job's results are more
    ta, tb = "token-of-alice-0123", "token-of-bob-01234"
    env = {"LSMI_TOKENS": "%s=alice,%s=bob" % (ta, tb)}
    a, b = start_all([node(dsn, "o%d" % i, env=env, args=[
        "--tenant-quota-bytes", str(quota)]) for i in range(2)])
    ds = upload_ok(a, SMALL, token=ta)
    ds2 = upload_ok(b, other, token=ta)
    for d in (a, b):
        p = assert_problem(upload_retry(d, third, token=ta), 507)
        assert "--tenant-quota-bytes" in p["detail"], p
    assert upload_retry(b, third, token=tb).status == 201
    done = submit_ok(b, ds, TINY, token=ta)  # under the quota
    wait_done(a, done, token=ta)
    for d in (a, b):  # its results took alice over it
        p = assert_problem(d.submit(ds, TINY, token=ta), 507)
        assert "quota" in p["detail"], p
    assert a.request("DELETE", "/v1/datasets/%s" % ds2,
                     token=ta).status == 204
    assert b.request("DELETE", "/v1/jobs/" + done, token=ta).status == 204
    wait_done(b, submit_ok(a, ds, TINY, token=ta), token=ta)
    stop_clean([a, b])


test_tenant_quota_across_nodes.ASAN_TOO = True


def test_named_keys_across_nodes():
    """An upload that names its keys (x1=, x2=, y=, id=) through one node
    is fitted by the others with those keys, a job of one member and an
    ensemble whose members and combination spread: the result files equal
    the single node's byte for byte, every row joins back to the file (row,
    id, label) on every node, and the summary has the class names and the
    provenance. The same bytes with other keys are the dataset's 409."""
    dsn = new_database()
    nodes = start_all([node(dsn, "y%d" % i) for i in range(2)])
    ref = Reference()
    try:
        data, labels, ids = named_dataset()
        r = upload_retry(nodes[0], data, NAMED_KEYS)
        assert r.status == 201, (r.status, r.body)
        ds = r.json()
        assert ds["keys"] == {"x1": "feat_a", "x2": "feat_b", "y": "label",
                              "id": "sample_id"}, ds
        assert nodes[1].request("GET", "/v1/datasets/" + ds["id"]).json() == ds
        p = assert_problem(upload_retry(nodes[1], data, "?x1=feat_b&x2=feat_a"
                                        "&y=label"), 409, "x1")
        assert "x1=feat_a" in p["detail"], p
        assert upload_retry(nodes[1], data, NAMED_KEYS).status == 200
        for params in (dict(TINY, seed=3),
                       dict(TINY, seed=4, ensemble=2)):
            job = submit_ok(nodes[1], ds["id"], params)
            j = wait_done(nodes[0], job)
            summary = ref.check(nodes, job, j, data, params, NAMED_KEYS)
            assert j["summary"]["class_names"] == CLASSES, j["summary"]
            prov = j["summary"]["provenance"]
            assert prov["input"]["dataset_id"] == ds["id"], prov
            assert prov["input"]["keys"] == summary["provenance"]["input"][
                "keys"], prov
            assert prov["input"]["val"] == "drawn", prov
            for d in nodes:
                body = d.request("GET", "/v1/jobs/%s/results?split=all"
                                 "&format=ndjson" % job).body.decode()
                rows = [json.loads(line) for line in body.splitlines()]
                assert sorted(r["row"] for r in rows) == list(range(200))
                for row in rows:
                    assert row["id"] == ids[row["row"]], row
                    assert row["label"] == labels[row["row"]], row
        stop_clean(nodes)
    finally:
        ref.close()


def test_ensemble_members_spread():
    """An ensemble of 3 on 3 idle nodes: each node trains one member, one
    of them combines, and the result is the single node's."""
    dsn = new_database()
    nodes = start_all([node(dsn, "e%d" % i) for i in range(3)])
    ref = None if ASAN else Reference()
    try:
        ds = upload_ok(nodes[0], DEMO)
        params = dict(TINY, ensemble=3, epochs_discriminator=200,
                      epochs_entropy=200, seed=11)
        job = submit_ok(nodes[1], ds, params)
        j = wait_done(nodes[2], job, timeout=180)
        rs = [r for r in runs(nodes) if r[0] == job]
        members = {r[1]: r[3] for r in rs if r[1] >= 0}
        assert sorted(members) == [0, 1, 2], rs
        assert len(set(members.values())) == 3, rs  # three nodes
        assert [r[6] for r in rs].count("succeeded") == 1, rs
        assert [r[6] for r in rs].count("done") == 3, rs
        assert j["summary"]["ensemble"] == 3
        if ref:
            ref.check(nodes, job, j, DEMO, params)
        # Every node serves the result pages.
        for d in nodes:
            assert d.request("GET", "/v1/jobs/%s/results?limit=5"
                             % job).status == 200
        stop_clean(nodes)
    finally:
        if ref:
            ref.close()


test_ensemble_members_spread.ASAN_TOO = True


def test_folds_spread():
    """An ensemble of 2 with 2 cross-fitting folds on 3 idle nodes: its 4
    units (every fold of every member) run on more than one node, one node
    combines, and the result is the single node's, byte for byte."""
    dsn = new_database()
    nodes = start_all([node(dsn, "f%d" % i) for i in range(3)])
    ref = None if ASAN else Reference()
    try:
        ds = upload_ok(nodes[0], DEMO)
        params = dict(TINY, ensemble=2, folds=2, epochs_discriminator=200,
                      epochs_entropy=200, seed=12)
        job = submit_ok(nodes[1], ds, params)
        assert sql(dsn, "SELECT members FROM jobs WHERE id = '%s'"
                   % job) == "4"
        j = wait_done(nodes[2], job, timeout=180)
        by = units_of(runs(nodes), job)
        assert sorted(by) == [-1, 0, 1, 2, 3], by
        for unit, rr in by.items():
            assert len(rr) == 1, rr  # claimed exactly once
            assert rr[0][6] == ("succeeded" if unit < 0 else "done"), rr
        assert len({by[u][0][3] for u in range(4)}) >= 2, by
        assert j["summary"]["ensemble"] == 2 and j["summary"]["folds"] == 2
        assert j["progress"]["fraction"] == 1, j["progress"]
        if ref:
            ref.check(nodes, job, j, DEMO, params)
        stop_clean(nodes)
    finally:
        if ref:
            ref.close()


test_folds_spread.ASAN_TOO = True


def test_folds_queued_before():
    """A job of folds queued before folds were units (schema version 1:
    its E units whole members) runs as it did, each member with all its
    folds on one node, and its result is the single node's."""
    dsn = new_database()
    a, = start_all([node(dsn, "o1")])
    ref = None if ASAN else Reference()
    try:
        ds = upload_ok(a, DEMO)
        busy = submit_ok(a, ds, dict(LONG, seed=1))
        end = time.time() + 30 * SLOW
        while a.job(busy)["state"] != "running" and time.time() < end:
            time.sleep(0.05)
        # The node's one worker is busy: the job stays queued while its
        # units are made what version 1 made them.
        params = dict(TINY, ensemble=2, folds=2, seed=13)
        job = submit_ok(a, ds, params)
        sql(dsn, "DELETE FROM members WHERE job_id = '%s' AND idx >= 2; "
            "UPDATE jobs SET members = 2 WHERE id = '%s'" % (job, job))
        assert a.request("DELETE", "/v1/jobs/" + busy).status == 202
        j = wait_done(a, job)
        by = units_of(runs([a]), job)
        assert sorted(by) == [-1, 0, 1], by
        assert j["summary"]["ensemble"] == 2 and j["summary"]["folds"] == 2
        if ref:
            ref.check([a], job, j, DEMO, params)
        stop_clean([a])
    finally:
        if ref:
            ref.close()


def test_queue_bound():
    """--queue-size bounds the cluster's queue, whichever node a job comes
    through: with both nodes busy, the third queued job is one too many on
    either node (429 with Retry-After), and a place freed is taken again.
    /metrics shows the cluster's queue."""
    dsn = new_database()
    nodes = start_all([node(dsn, "q%d" % i, args=["--queue-size", "2"])
                       for i in range(2)])
    ds = upload_ok(nodes[0], DEMO)
    busy = [submit_ok(nodes[i], ds, dict(LONG, seed=i)) for i in range(2)]
    end = time.time() + 30 * SLOW
    while {nodes[0].job(j)["state"] for j in busy} != {"running"}:
        assert time.time() < end, "the nodes did not take the long jobs"
        time.sleep(0.05)
    queued = [submit_ok(nodes[i], ds, TINY) for i in range(2)]
    for d in nodes:
        r = d.submit(ds, TINY)
        assert_problem(r, 429)
        assert r.header("Retry-After"), r.headers
        m = d.request("GET", "/metrics").body.decode()
        assert "\nlsmi_queue_depth 2\n" in m, m
    r = nodes[1].request("DELETE", "/v1/jobs/" + queued[0])
    assert r.status == 202, (r.status, r.body)
    queued[0] = submit_ok(nodes[1], ds, TINY)  # the freed place
    assert_problem(nodes[0].submit(ds, TINY), 429)
    for j in busy:
        assert nodes[1].request("DELETE", "/v1/jobs/" + j).status == 202
    for j in queued:
        wait_done(nodes[0], j)
    stop_clean(nodes)


test_queue_bound.ASAN_TOO = True


def test_events_across_nodes():
    """A node that does not run a job streams its events all the same: the
    progress the running node reports (every 2 s), then the end."""
    dsn = new_database()
    a = node(dsn, "v0").start()
    ds = upload_ok(a, DEMO)
    job = submit_ok(a, ds, dict(LONG, epochs_discriminator=3000,
                                epochs_entropy=3000))
    end = time.time() + 30 * SLOW
    while a.job(job)["state"] != "running":
        assert time.time() < end, "the job never ran"
        time.sleep(0.05)
    b = node(dsn, "v1").start()  # idle, after the job was claimed by a
    ev = sse_events(b, "/v1/jobs/%s/events" % job, timeout=120)
    assert ev[0][0] == "job" and ev[0][2]["state"] == "running", ev[0]
    assert ev[-1] == ("end", None, {"state": "succeeded"}), ev[-1]
    ids = [e[1] for e in ev if e[0] == "job"]
    assert ids == list(range(1, len(ids) + 1)), ids
    fr = [(e[2]["progress"] or {}).get("fraction") for e in ev
          if e[0] == "job" and e[2]["state"] == "running"]
    mid = [f for f in fr if f is not None and 0 < f < 1]
    assert mid and mid == sorted(mid), fr
    assert {r[3] for r in runs([a, b]) if r[0] == job} == {"v0"}
    stop_clean([a, b])


def test_store_direct():
    """--store-direct: what needs a session (the listener, the migration's
    lock) connects through it, the pool through --store. Here the two DSNs
    differ by their role, which pg_stat_activity and the tables' owner
    show; a job queued through one node still wakes the other at once."""
    dsn = new_database()
    sql(dsn, "CREATE ROLE direct LOGIN SUPERUSER")
    try:
        direct = dsn.replace("user=lsmi", "user=direct")
        assert direct != dsn
        a = node(dsn, "w0", args=["--store-direct", direct]).start()
        owner = sql(dsn, "SELECT tableowner FROM pg_tables WHERE "
                    "tablename = 'jobs'")
        assert owner == "direct", owner
        b = node(dsn, "w1", args=["--store-direct", direct]).start()
        ds = upload_ok(a, SMALL)
        end = time.time() + 10 * SLOW
        while True:  # the listeners connect in the background
            rows = sql(dsn, "SELECT application_name || ':' || usename FROM "
                       "pg_stat_activity WHERE application_name LIKE "
                       "'lsmi w%' ORDER BY 1").split("\n")
            if len([r for r in rows if "listener" in r]) == 2:
                break
            assert time.time() < end, rows
            time.sleep(0.1)
        for r in rows:
            assert r.endswith(":direct" if "listener" in r else ":lsmi"), rows
        assert any("listener" not in r for r in rows), rows  # a pool's
        job = submit_ok(a, ds, TINY)
        j = wait_done(b, job)
        assert j["attempts"] == 1
        stop_clean([a, b])
    finally:
        sql(dsn, "DROP OWNED BY direct CASCADE")
    # --store-direct alone is refused: it means nothing without --store.
    d = Daemon(args=["--store-direct", dsn])
    try:
        d.start()
        raise AssertionError("started with --store-direct alone")
    except RuntimeError as e:
        assert "--store-direct needs --store" in str(e), e
    d.stop()


test_store_direct.ASAN_TOO = True


def fraction(d, job):
    """The job's progress as node d sees it (its own units' live)."""
    p = d.job(job)["progress"]
    return p.get("fraction") or 0.0


def test_database_down():
    """PostgreSQL stopped for 10 s while uploads, submissions and fits go
    on: /healthz answers, /readyz and the API say 503 with Retry-After, the
    fits go on and report when it is back; every acknowledged dataset and
    job is there afterwards, and every job succeeds."""
    if not os.environ.get("LSMI_TEST_PG_STOP"):
        raise Skip("pg.sh gives no way to stop the server")
    dsn = new_database()
    nodes = start_all([node(dsn, "d%d" % i) for i in range(2)])
    ds = upload_ok(nodes[0], DEMO)
    # Fits of a few seconds that straddle the outage.
    jobs = [submit_ok(nodes[i % 2], ds, dict(LONG, epochs_discriminator=3000,
                                             epochs_entropy=3000, seed=i),
                      key="early-%d" % i) for i in range(3)]
    acked_ds, acked_jobs, errors = [], list(jobs), []
    stop = threading.Event()

    def client(k):
        d = nodes[k]
        i = 0
        while not stop.is_set():
            try:
                data = synth(os.path.join(WORK, "up-%d-%d.npz" % (k, i)),
                             n=300, seed=1000 * k + i)
                r = upload_retry(d, data, deadline=60)
                # 200: a first try committed but its answer was lost.
                assert r.status in (200, 201), (r.status, r.body)
                acked_ds.append((r.json()["id"], data))
                acked_jobs.append(submit_ok(d, r.json()["id"], TINY,
                                            key="k%d-%d" % (k, i)))
                i += 1
            except Exception as e:  # reported by the main thread
                errors.append(repr(e))
                return
            time.sleep(0.3)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    # Down when a fit is past half way, so that it ends while the database
    # is away (even on a loaded machine) and has to wait to report.
    end = time.time() + 60
    while max(fraction(d, j) for d in nodes for j in jobs[:2]) < 0.6:
        assert time.time() < end, "the fits did not progress"
        time.sleep(0.05)
    subprocess.run(["bash", "-c", os.environ["LSMI_TEST_PG_STOP"]],
                   check=True)
    t_down = time.time()
    time.sleep(1.0)
    for d in nodes:
        assert d.request("GET", "/healthz").status == 200
        r = d.request("GET", "/readyz")
        assert r.status == 503 and r.json()["store"] is False, r.body
        r = d.request("GET", "/v1/jobs")
        assert_problem(r, 503)
        assert r.header("Retry-After"), r.headers
        assert_problem(d.request("GET", "/v1/jobs/" + jobs[0]), 503)
    while time.time() < t_down + 10:
        time.sleep(0.1)
    subprocess.run(["bash", "-c", os.environ["LSMI_TEST_PG_START"]],
                   check=True)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(acked_ds) >= 2, acked_ds
    for d in nodes:
        end = time.time() + 30
        while d.request("GET", "/readyz").status != 200:
            assert time.time() < end, "not ready again"
            time.sleep(0.2)
    for k, (dsid, data) in enumerate(acked_ds):
        got = nodes[k % 2].request("GET", "/v1/datasets/" + dsid)
        assert got.status == 200, (dsid, got.status)
    for k, job in enumerate(acked_jobs):
        wait_done(nodes[k % 2], job, timeout=180)
    # The fits that ran through the outage waited and then reported.
    waits = [e for d in nodes for e in events(d)
             if e["state"] == "store_wait"]
    backs = [e for d in nodes for e in events(d)
             if e["state"] == "store_back"]
    assert waits and len(backs) == len(waits), (waits, backs)
    n = sql(dsn, "SELECT count(*) FROM jobs WHERE state = 'succeeded'")
    assert int(n) == len(acked_jobs), (n, len(acked_jobs))
    stop_clean(nodes)


def test_shutdown_gives_back():
    """SIGTERM with a unit running: after the grace period the unit goes
    back to the queue and another node runs it at once (attempt 2)."""
    dsn = new_database()
    nodes = start_all([node(dsn, "s%d" % i, args=["--shutdown-timeout", "0"])
                       for i in range(2)])
    ds = upload_ok(nodes[0], DEMO)
    job = submit_ok(nodes[0], ds, dict(LONG, epochs_discriminator=500,
                                       epochs_entropy=500))
    end = time.time() + 30 * SLOW
    rs = []
    while not rs and time.time() < end:
        rs = [r for r in runs(nodes) if r[0] == job]
        time.sleep(0.05)
    assert rs
    runner = [d for d in nodes if d.name == rs[0][3]][0]
    other = [d for d in nodes if d is not runner][0]
    time.sleep(0.2)
    stop_clean([runner])  # --shutdown-timeout 0: released at once
    assert [e["state"] for e in events(runner) if e["job"] == job][-1] == \
        "released"
    j = wait_done(other, job, timeout=120)
    assert j["attempts"] == 2, j
    stop_clean([other])


test_shutdown_gives_back.ASAN_TOO = True


def test_report_overlaps_next_fit():
    """A one-worker node: a unit past its fit reports (result files, the
    job's end) while the next unit is claimed and fits, yet no two fits
    ever run at once; a SIGTERM in the middle of the batch ends what runs
    and reports there, and another node finishes the rest: every job once."""
    dsn = new_database()
    a = node(dsn, "o1", args=["--shutdown-timeout", "5"]).start()
    ds = upload_ok(a, DEMO)
    jobs = [submit_ok(a, ds, dict(TINY, seed=i)) for i in range(16)]
    end = time.time() + 60 * SLOW
    while time.time() < end and \
            sum(e["state"] == "succeeded" for e in events(a)) < 6:
        time.sleep(0.01)
    stop_clean([a])
    b = node(dsn, "o2").start()
    for j in jobs:
        wait_done(b, j)
    # The fits of node a, claim to "reporting", one after another; a unit
    # claimed before the one before it ended is the overlap.
    fits, ends = {}, {}
    for e in events(a):
        k = (e["job"], e["attempt"])
        if e["state"] == "running":
            fits[k] = [stamp(e), None]
        elif e["state"] == "reporting":
            fits[k][1] = stamp(e)
        else:
            ends[k] = stamp(e)
    spans = sorted(v for v in fits.values() if v[1] is not None)
    assert len(spans) >= 6, fits
    for x, y in zip(spans, spans[1:]):
        assert y[0] >= x[1], (x, y)  # one worker: one fit at a time
    overlapped = [k for k, v in fits.items()
                  if any(v[0] < t and fits[o][0] < v[0]
                         for o, t in ends.items() if o != k)]
    assert overlapped, (fits, ends)
    rs = runs([a, b])
    for job in jobs:
        ok = [r for r in rs if r[0] == job and r[6] == "succeeded"]
        assert len(ok) == 1, units_of(rs, job)
    stop_clean([b])


test_report_overlaps_next_fit.ASAN_TOO = True


def test_store_flags():
    """A DSN libpq cannot parse is refused at start (exit 2 is the
    configuration's, 1 the start's); a database that is down at start
    leaves the node up but not ready, and ready once it answers."""
    d = Daemon(args=["--store", "host=localhost port"])
    try:
        d.start()
        raise AssertionError("started with a broken DSN")
    except RuntimeError as e:
        assert "PostgreSQL connection string" in str(e), e
    d.stop()
    if not DSN:
        raise Skip("no PostgreSQL")
    # A port nothing listens on: the node runs, not ready.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = node("host=127.0.0.1 port=%d user=lsmi dbname=x connect_timeout=1"
             % port, "down").start()
    assert d.request("GET", "/healthz").status == 200
    r = d.request("GET", "/readyz")
    assert r.status == 503, r.body
    assert_problem(d.request("GET", "/v1/datasets"), 503)
    stop_clean([d])


test_store_flags.ASAN_TOO = True


if __name__ == "__main__":
    tests = {k: v for k, v in globals().items()
             if k.startswith("test_") and (not ASAN or
                                           getattr(v, "ASAN_TOO", False))}
    sys.exit(run_tests(tests, sys.argv))
