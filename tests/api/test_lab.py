#!/usr/bin/env python3
"""test_lab.py — running `lsmi serve` for a lab, over real HTTP.

Deleting finished jobs and what a dataset's deletion takes with it,
retention (--retain-days), quotas (--tenant-quota-bytes,
--tenant-queue-size), a full disk (--min-free-disk, and a tmpfs filled to
the last byte), tokens edited with `lsmi token` and reloaded on SIGHUP, the
log (levels, details, --trusted-proxy), the metrics, and a store of an
older schema. Each test starts its own daemon(s) and removes what it made;
the last line is "N passed, N failed, N skipped".
Run one test: tests/api/test_lab.py test_delete_jobs
"""
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsmiapi import (LSMI, SLOW, Daemon, assert_problem,  # noqa: E402
                     Tmpfs, fill, run_tests, synth)

FAST = {"epochs_discriminator": 2, "epochs_entropy": 2, "threads": 1}
LONG = {"epochs_discriminator": 10000, "epochs_entropy": 10000, "threads": 1}
ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"

WORK = tempfile.mkdtemp(prefix="lsmi-lab-work-")
SMALL = synth(os.path.join(WORK, "small.npz"), n=400)
OTHER = synth(os.path.join(WORK, "other.npz"), n=400, seed=5)
THIRD = synth(os.path.join(WORK, "third.npz"), n=400, seed=9)


def upload_ok(d, data=SMALL, token=None, query=""):
    r = d.upload(data, query=query, token=token)
    assert r.status in (200, 201), (r.status, r.body)
    return r.json()


def run_job(d, ds_id, token=None, key=None):
    r = d.submit(ds_id, FAST, key=key, token=token)
    assert r.status == 202, r.body
    j = d.wait_job(r.json()["id"], token=token)
    assert j["state"] == "succeeded", j
    return j["id"]


def files(data, sub):
    path = os.path.join(data, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def of_job(names, job):
    return [n for n in names if n.startswith(job + ".")]


def sql(data, statement, args=()):
    """Runs one statement on the store (the daemon may run: WAL)."""
    db = sqlite3.connect(os.path.join(data, "lsmi.db"), timeout=30)
    try:
        rows = db.execute(statement, args).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def log_lines(d):
    """The daemon's JSON log lines, parsed."""
    out = []
    for line in d.log_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def wait_log(d, pred, timeout=10):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        for o in log_lines(d):
            if pred(o):
                return o
        time.sleep(0.05)
    raise AssertionError("no such log line; tail:\n" + d.log_text()[-2000:])


def wait_until(cond, timeout=10, what="condition"):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def refused_start(data, env=None, args=()):
    """`lsmi serve` that must not start: (exit status, stderr)."""
    p = subprocess.run([LSMI, "serve", "--listen", "127.0.0.1:0",
                        "--data-dir", data] + list(args),
                       capture_output=True, timeout=60 * SLOW,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stderr.decode(errors="replace")


# ---- deleting jobs and datasets -------------------------------------------

def test_delete_jobs():
    """DELETE of a finished job removes it, its result files, its cached
    orders and its idempotency key (204); of a queued or running one it
    cancels (202), and a second DELETE then removes it; another tenant's
    job is a 404."""
    with Daemon(env={"LSMI_TOKENS": "%s=alice,%s=bob" % (ALICE, BOB)},
                token=ALICE) as d:
        data = d.data_dir
        ds = upload_ok(d)
        a = run_job(d, ds["id"], key="key-a")
        # A sorted page leaves cached orders in cache/.
        r = d.request("GET", "/v1/jobs/%s/results?sort=-s&limit=3" % a)
        assert r.status == 200
        assert of_job(files(data, "results"), a) == [a + ".train", a + ".val"]
        assert of_job(files(data, "cache"), a), files(data, "cache")
        assert_problem(d.request("DELETE", "/v1/jobs/" + a, token=BOB), 404)
        r = d.request("DELETE", "/v1/jobs/" + a)
        assert r.status == 204 and r.body == b"", (r.status, r.body)
        assert_problem(d.request("GET", "/v1/jobs/" + a), 404)
        assert_problem(d.request("GET", "/v1/jobs/%s/results" % a), 404)
        assert_problem(d.request("DELETE", "/v1/jobs/" + a), 404)
        assert of_job(files(data, "results"), a) == []
        assert of_job(files(data, "cache"), a) == []
        assert sql(data, "SELECT COUNT(*) FROM pending") == [(0,)]
        # Its idempotency key went with it: the same request is a new job.
        r = d.submit(ds["id"], FAST, key="key-a")
        assert r.status == 202 and r.json()["id"] != a
        assert r.header("Idempotent-Replayed") is None
        d.wait_job(r.json()["id"])
        # Queued or running: DELETE cancels; the next DELETE removes it.
        b = d.submit(ds["id"], LONG).json()["id"]
        r = d.request("DELETE", "/v1/jobs/" + b)
        assert r.status == 202, r.body
        assert d.wait_job(b)["state"] == "cancelled"
        assert d.request("DELETE", "/v1/jobs/" + b).status == 204
        assert_problem(d.request("GET", "/v1/jobs/" + b), 404)
        lines = [o for o in log_lines(d) if o.get("event") == "job" and
                 o.get("state") == "deleted"]
        assert {o["job"] for o in lines} == {a, b}, lines
        assert d.stop() == 0
        # Nothing left that the store does not know: the daemon starts.
        d2 = Daemon(data_dir=data, env={"LSMI_TOKENS": ALICE + "=alice"},
                    token=ALICE).start()
        assert d2.request("GET", "/v1/jobs").json()["total"] == 1
        assert d2.stop() == 0


def test_delete_dataset_takes_its_jobs():
    """Deleting a dataset deletes its finished jobs and their files with
    it; ?keep_jobs=true keeps them (and their results answer); a queued
    job blocks it (409) and nothing goes; a bad keep_jobs is a 400."""
    with Daemon() as d:
        data = d.data_dir
        ds = upload_ok(d)
        other = upload_ok(d, OTHER)
        j1, j2 = run_job(d, ds["id"]), run_job(d, ds["id"])
        k = run_job(d, other["id"])
        q = d.submit(ds["id"], LONG).json()["id"]
        assert_problem(d.request("DELETE", "/v1/datasets/" + ds["id"]), 409)
        assert d.job(j1)["state"] == "succeeded"
        assert_problem(d.request("DELETE", "/v1/datasets/%s?keep_jobs=maybe"
                                 % ds["id"]), 400, "keep_jobs")
        assert d.request("DELETE", "/v1/jobs/" + q).status == 202
        d.wait_job(q)
        r = d.request("DELETE", "/v1/datasets/" + ds["id"])
        assert r.status == 204, r.body
        for j in (j1, j2, q):
            assert_problem(d.request("GET", "/v1/jobs/" + j), 404)
            assert of_job(files(data, "results"), j) == []
        assert ds["id"] not in files(data, "datasets")
        line = [o for o in log_lines(d) if o.get("event") == "dataset" and
                o.get("state") == "deleted"][-1]
        assert line["jobs_deleted"] == 3, line
        # keep_jobs=true: the job and its results stay.
        r = d.request("DELETE", "/v1/datasets/%s?keep_jobs=true" %
                      other["id"])
        assert r.status == 204
        assert d.job(k)["state"] == "succeeded"
        assert d.request("GET", "/v1/jobs/%s/results" % k).status == 200
        assert files(data, "datasets") == []
        assert files(data, "results") == [k + ".train", k + ".val"]
        assert sql(data, "SELECT COUNT(*) FROM pending") == [(0,)]


def test_crash_mid_deletion():
    """A deletion interrupted after its transaction (the row gone, the
    files not yet) is finished by the next start, never refused as files
    the store does not know: the pending "job" entry tells."""
    d = Daemon().start()
    data = d.data_dir
    ds = upload_ok(d)
    a = run_job(d, ds["id"])
    d.request("GET", "/v1/jobs/%s/results?sort=r&limit=1" % a)
    assert d.kill9() == -9
    # What the transaction of DELETE /v1/jobs/{id} leaves, then a crash.
    sql(data, "DELETE FROM jobs WHERE id = ?", (a,))
    sql(data, "INSERT INTO pending (kind, id, created_at) VALUES "
              "('job', ?, 0)", (a,))
    assert of_job(files(data, "results"), a)
    d = Daemon(data_dir=data).start()
    assert of_job(files(data, "results"), a) == []
    assert of_job(files(data, "cache"), a) == []
    assert sql(data, "SELECT COUNT(*) FROM pending") == [(0,)]
    cleanup = [o for o in log_lines(d) if o.get("event") == "cleanup"]
    assert cleanup and cleanup[-1]["pending_finished"] == 1, cleanup
    # A cached order whose job is gone (the cache is derived) is swept.
    b = run_job(d, ds["id"])
    d.request("GET", "/v1/jobs/%s/results?sort=r&limit=1" % b)
    assert d.stop() == 0
    stray = os.path.join(data, "cache", "job_gone.val.r.asc")
    with open(stray, "wb") as f:
        f.write(b"x")
    d = Daemon(data_dir=data).start()
    assert not os.path.exists(stray)
    assert of_job(files(data, "cache"), b), "a known job's order stays"
    assert d.stop() == 0


# ---- retention ---------------------------------------------------------

def test_retention():
    """--retain-days: a second after the start, jobs that finished longer
    ago are deleted with their files, and idempotency keys made longer ago;
    younger and unfinished jobs stay. SIGHUP sweeps at once."""
    d = Daemon().start()
    data = d.data_dir
    ds = upload_ok(d)
    old = run_job(d, ds["id"], key="key-old")
    young = run_job(d, ds["id"], key="key-young")
    assert d.stop() == 0
    day = 86400
    sql(data, "UPDATE jobs SET finished_at = finished_at - ? WHERE id = ?",
        (3 * day, old))
    sql(data, "UPDATE idempotency SET created_at = created_at - ?",
        (3 * day,))
    d = Daemon(data_dir=data, args=["--retain-days", "2", "--workers", "1"])
    d.start()
    line = wait_log(d, lambda o: o.get("event") == "retention")
    assert line["jobs_deleted"] == 1 and line["keys_deleted"] == 1, line
    assert line["level"] == "info" and line["ms"] >= 0, line
    assert_problem(d.request("GET", "/v1/jobs/" + old), 404)
    assert of_job(files(data, "results"), old) == []
    assert d.job(young)["state"] == "succeeded"
    # key-young's key is old too (made "3 days ago"): a new job.
    r = d.submit(ds["id"], FAST, key="key-young")
    assert r.status == 202 and r.json()["id"] != young
    d.wait_job(r.json()["id"])
    # Running, SIGHUP sweeps now: young has aged meanwhile; a job that
    # has run for days, and one queued as long, are not finished.
    running = d.submit(ds["id"], LONG).json()["id"]
    d.wait_progress(running)
    queued = d.submit(ds["id"], LONG).json()["id"]
    sql(data, "UPDATE jobs SET finished_at = finished_at - ? WHERE id = ?",
        (3 * day, young))
    sql(data, "UPDATE jobs SET created_at = created_at - ?, started_at = "
              "started_at - ? WHERE id IN (?, ?)",
        (3 * day, 3 * day, running, queued))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len([o for o in log_lines(d)
                            if o.get("event") == "retention"]) == 2,
               what="the sweep of SIGHUP")
    assert_problem(d.request("GET", "/v1/jobs/" + young), 404)
    assert of_job(files(data, "results"), young) == []
    assert d.job(running)["state"] == "running"
    assert d.job(queued)["state"] == "queued"
    assert d.proc.poll() is None, "SIGHUP must not stop the daemon"
    line = wait_log(d, lambda o: o.get("event") == "reload")
    assert "no tokens file" in line["detail"] and line["tokens"] == 0, line
    for j in (queued, running):
        assert d.request("DELETE", "/v1/jobs/" + j).status == 202
    assert d.stop() == 0


# ---- quotas ----------------------------------------------------------

def test_tenant_quotas():
    """--tenant-quota-bytes: an upload past it is a 507 problem (refused
    before its body when Content-Length says so), a job of a tenant at its
    quota too; the other tenant is not touched; deleting makes room.
    --tenant-queue-size: the queued jobs past it are a 429 problem with
    Retry-After."""
    quota = len(SMALL) + len(OTHER) + 2000  # a job's results are more
    env = {"LSMI_TOKENS": "%s=alice,%s=bob" % (ALICE, BOB)}
    with Daemon(args=["--tenant-quota-bytes", str(quota),
                      "--tenant-queue-size", "1", "--workers", "1",
                      "--retry-after", "3"], env=env, token=ALICE) as d:
        a = upload_ok(d)
        a2 = upload_ok(d, OTHER)
        p = assert_problem(d.upload(THIRD), 507)
        assert "quota" in p["detail"] and "--tenant-quota-bytes" in \
            p["detail"], p
        assert d.upload(THIRD, token=BOB).status == 201
        # A job while under the quota: its results take alice over it.
        done = run_job(d, a["id"])
        p = assert_problem(d.submit(a["id"], FAST), 507)
        assert "quota" in p["detail"], p
        assert d.request("DELETE", "/v1/datasets/" + a2["id"]).status == 204
        assert d.request("DELETE", "/v1/jobs/" + done).status == 204
        # Queued jobs: one may wait; the second is a 429.
        run_ = d.submit(a["id"], LONG)
        assert run_.status == 202, run_.body
        d.wait_progress(run_.json()["id"])
        assert d.submit(a["id"], LONG).status == 202
        r = d.submit(a["id"], FAST)
        p = assert_problem(r, 429)
        assert r.header("Retry-After") == "3"
        assert "--tenant-queue-size" in p["detail"], p
        assert d.submit(a["id"], FAST, token=BOB).status == 422  # not bob's
        m = d.request("GET", "/metrics").body.decode()
        assert re.search(r'lsmi_http_requests_total\{route="/v1/datasets",'
                         r'method="POST",status="507"\} 1\n', m), m[:3000]


def chunked_upload(d, data):
    """An upload without Content-Length (chunked): the daemon learns its
    size only as it writes it."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60 * SLOW)
    try:
        conn.putrequest("POST", "/v1/datasets")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for i in range(0, len(data), 4096):
                piece = data[i:i + 4096]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # answered before the body's end: read the answer
        r = conn.getresponse()
        from lsmiapi import Response
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def test_full_disk():
    """A disk below --min-free-disk: uploads and jobs are 507 problems (not
    500), /readyz is 503 saying so, the metrics show the free bytes; with
    room again all is well. With no reserve, a disk full to the last byte
    answers a chunked upload 507 too, and leaves no temp file."""
    with Tmpfs("16m", WORK) as fs:
        data = os.path.join(fs.path, "data")
        d = Daemon(data_dir=data, args=["--min-free-disk", "4M"]).start()
        ds = upload_ok(d)
        r = d.request("GET", "/readyz")
        assert r.status == 200 and r.json()["disk"] is True, r.body
        filler = fill(fs.path, leave=3 << 20)
        m = d.request("GET", "/metrics").body.decode()
        free = metric(m, "lsmi_data_dir_free_bytes")
        assert free is not None and free <= 3 << 20, free
        assert metric(m, "lsmi_data_dir_size_bytes") >= 15 << 20
        r = d.request("GET", "/readyz")
        assert r.status == 503, r.body
        o = r.json()
        assert o["ready"] is False and o["disk"] is False, o
        assert "full" in o["detail"] and "--min-free-disk" in o["detail"], o
        assert o["disk_free_bytes"] <= 3 << 20, o
        p = assert_problem(d.upload(OTHER), 507)
        assert "--min-free-disk" in p["detail"] and fs.path not in \
            p["detail"], p
        assert_problem(chunked_upload(d, OTHER), 507)
        assert_problem(d.submit(ds["id"], FAST), 507)
        # Reading and deleting still work.
        assert d.request("GET", "/v1/datasets/" + ds["id"]).status == 200
        os.remove(filler)
        assert d.request("GET", "/readyz").status == 200
        assert d.upload(OTHER).status == 201
        run_job(d, ds["id"])
        assert d.stop() == 0

        # No reserve: the disk full to the last byte.
        d = Daemon(data_dir=data, args=["--min-free-disk", "0"]).start()
        filler = fill(fs.path)
        r = d.request("GET", "/readyz")
        assert r.status == 503 and r.json()["disk"] is False, r.body
        r = chunked_upload(d, THIRD)
        p = assert_problem(r, 507)
        assert "No space left" in p["detail"] or "full" in p["detail"], p
        r = d.submit(ds["id"], FAST)
        assert r.status in (202, 507), (r.status, r.body)  # never a 500
        if r.status == 507:
            assert_problem(r, 507)
        wait_until(lambda: files(data, "tmp") == [], what="tmp/ emptied")
        os.remove(filler)
        if r.status == 202:
            d.wait_job(r.json()["id"])
        assert d.stop() == 0
        log = d.log_text()
        assert '"status":500' not in log, log[-3000:]


# ---- tokens ----------------------------------------------------------

def lsmi_token(*args, env=None):
    p = subprocess.run([LSMI, "token"] + list(args), capture_output=True,
                       timeout=30, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_tokens_edited_and_reloaded():
    """`lsmi token add` makes a token into a file of mode 0600 (printed
    once), `list` shows tenants and ids (never a token), `revoke` removes
    one; SIGHUP reloads the file (logged, the daemon lives on), a broken
    file is refused and the tokens loaded before stay; the start line says
    how many tenants."""
    tokens = os.path.join(tempfile.mkdtemp(dir=WORK), "tokens")
    rc, out, err = lsmi_token("add", "alice", "--tokens-file", tokens)
    assert rc == 0, err
    alice = out.strip()
    assert re.fullmatch(r"[0-9a-f]{48}", alice), out
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    rc, _, err = lsmi_token("add", "bob", "--token", "short", "--tokens-file",
                            tokens)
    assert rc == 1 and "16 characters" in err, err
    rc, _, err = lsmi_token("add", "bo b", "--tokens-file", tokens)
    assert rc != 0
    with Daemon(args=["--tokens-file", tokens], token=alice) as d:
        start = wait_log(d, lambda o: o.get("event") == "start")
        assert start["tenants"] == 1 and start["tokens"] == 1, start
        assert d.request("GET", "/v1/jobs").status == 200
        assert_problem(d.request("GET", "/v1/jobs", token=BOB), 401)
        # add bob (LSMI_TOKENS_FILE names the file), reload
        rc, out, err = lsmi_token("add", "bob", "--token", BOB,
                                  env={"LSMI_TOKENS_FILE": tokens})
        assert rc == 0 and out == "", (out, err)
        rc, out, _ = lsmi_token("list", "--tokens-file", tokens)
        assert rc == 0 and "alice" in out and "bob" in out, out
        assert alice not in out and BOB not in out, out
        bob_id = [ln.split()[1] for ln in out.splitlines()
                  if ln.startswith("bob")][0]
        d.proc.send_signal(signal.SIGHUP)
        line = wait_log(d, lambda o: o.get("event") == "reload")
        assert line["level"] == "info" and line["tenants"] == 2, line
        assert "from the tokens file" in line["detail"], line
        assert d.request("GET", "/v1/jobs", token=BOB).status == 200
        # revoke alice's by the token, bob's by its id; a broken line
        rc, _, err = lsmi_token("revoke", alice, "--tokens-file", tokens)
        assert rc == 0, err
        with open(tokens, "a") as f:
            f.write("tooshort carol\n")
        d.proc.send_signal(signal.SIGHUP)
        line = wait_log(d, lambda o: o.get("event") == "reload" and
                        o.get("level") == "error")
        assert "line 2" in line["detail"] and "16" in line["detail"], line
        assert "tooshort" not in json.dumps(line)
        assert d.request("GET", "/v1/jobs").status == 200  # alice stays
        rc, out, err = lsmi_token("list", "--tokens-file", tokens)
        assert rc == 1 and "line 2" in err, (out, err)
        rc, _, err = lsmi_token("revoke", "--tenant", "carol",
                                "--tokens-file", tokens)
        assert rc == 1  # a broken line is no entry to revoke
        with open(tokens) as f:
            kept = [ln for ln in f if "carol" not in ln]
        with open(tokens, "w") as f:
            f.writelines(kept)
        rc, _, err = lsmi_token("revoke", bob_id, "--tokens-file", tokens)
        assert rc == 0, err
        rc, _, err = lsmi_token("add", "carol", "--token", ALICE,
                                "--tokens-file", tokens)
        assert rc == 0, err
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: d.request("GET", "/v1/jobs").status == 401,
                   what="alice's token revoked")
        assert d.request("GET", "/v1/jobs", token=BOB).status == 401
        assert d.request("GET", "/v1/jobs", token=ALICE).status == 200
        assert d.proc.poll() is None
        assert d.stop() == 0


def test_sighup_while_draining():
    """A SIGHUP (systemctl reload) that comes while the daemon drains its
    running job on SIGTERM does not kill it: it still exits 0 and requeues
    the job. (libuv gives SIGHUP its default action back, which ends the
    process, when the handler is closed.)"""
    d = Daemon(args=["--shutdown-timeout", "2", "--workers", "1"]).start()
    ds = upload_ok(d)
    j = d.submit(ds["id"], LONG).json()["id"]
    d.wait_progress(j)
    d.proc.send_signal(signal.SIGTERM)
    wait_log(d, lambda o: o.get("event") == "shutdown")
    d.proc.send_signal(signal.SIGHUP)
    d.proc.wait(timeout=60 * SLOW)
    assert d.stop() == 0, d.log_text()[-2000:]
    assert any(o.get("event") == "job" and o.get("state") == "requeued"
               for o in log_lines(d)), d.log_text()[-2000:]


def test_token_rules_at_start():
    """LSMI_TOKENS items that are not TOKEN=TENANT, and tokens shorter than
    16 characters, are refused with a clear message (exit 2, the secret not
    in it); a world-readable tokens file starts with a warning."""
    data = os.path.join(tempfile.mkdtemp(dir=WORK), "data")
    for env, words in (({"LSMI_TOKENS": "alice:s3cret-0123456789"},
                        ("not TOKEN=TENANT", "LSMI_TOKENS")),
                       ({"LSMI_TOKENS": "s3cret=alice"}, ("16 characters",)),
                       ({"LSMI_TOKENS": "s3cret-0123456789"},
                        ("not TOKEN=TENANT",))):
        rc, err = refused_start(data, env)
        assert rc == 2, (rc, err)
        for w in words:
            assert w in err, (w, err)
        assert "s3cret" not in err, err
        last = json.loads(err.strip().splitlines()[-1])
        assert last["level"] == "error" and last["event"] == "fatal", last
    # The examples of the Dockerfile and deploy/README.md, as a shell
    # expands them, start the daemon with one tenant.
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    for name in ("Dockerfile", os.path.join("deploy", "README.md")):
        with open(os.path.join(root, name)) as f:
            m = re.search(r"""-e LSMI_TOKENS=("[^"]*"|'[^']*'|\S+)""",
                          f.read())
        assert m, name
        value = subprocess.run(["sh", "-c", "printf %s " + m.group(1)],
                               capture_output=True, text=True).stdout
        token, tenant = value.split("=")
        with Daemon(env={"LSMI_TOKENS": value}, token=token) as d:
            start = wait_log(d, lambda o: o.get("event") == "start")
            assert start["tenants"] == 1, (name, start)
            assert d.request("GET", "/v1/jobs").status == 200, name
    tokens = os.path.join(WORK, "tokens-open")
    with open(tokens, "w") as f:
        f.write("%s alice\n" % ALICE)
    os.chmod(tokens, 0o644)
    with Daemon(args=["--tokens-file", tokens], token=ALICE) as d:
        w = wait_log(d, lambda o: o.get("event") == "tokens")
        assert w["level"] == "warn" and w["mode"] == "0644", w
        assert "chmod 600" in w["detail"], w


# ---- the log ---------------------------------------------------------

def test_log_lines():
    """Every log line is JSON with a level; a failed request's line says
    its problem's detail; ms has at most 3 decimals; with --trusted-proxy
    the peer is the client X-Forwarded-For names (its last entry), the
    proxy beside it; without, X-Forwarded-For is ignored."""
    env = {"LSMI_TOKENS": "%s=alice" % ALICE}
    with Daemon(args=["--quiet=false", "--trusted-proxy",
                      "10.9.9.9, 127.0.0.1"], env=env, token=ALICE) as d:
        upload_ok(d)
        d.request("GET", "/v1/jobs/job_nope")
        d.request("GET", "/v1/jobs", token="wrong-token-0123456789")
        d.request("GET", "/healthz",
                  headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7"})
        d.request("GET", "/readyz", headers={"X-Forwarded-For": "not-an-ip"})
    text = d.log_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        o = json.loads(ln)
        assert o.get("level") in ("info", "warn", "error"), ln
    reqs = [json.loads(ln) for ln in lines if '"event":"request"' in ln]
    nope = [o for o in reqs if o["path"] == "/v1/jobs/job_nope"][0]
    assert nope["status"] == 404 and nope["level"] == "warn"
    assert nope["detail"] == "no job 'job_nope'", nope
    unauth = [o for o in reqs if o["status"] == 401][0]
    assert "bearer token" in unauth["detail"], unauth
    ok = [o for o in reqs if o["path"] == "/v1/datasets"][0]
    assert ok["level"] == "info" and "detail" not in ok, ok
    for m in re.finditer(r'"ms":([0-9.eE+-]+)', text):
        assert re.fullmatch(r"\d+(\.\d{1,3})?", m.group(1)), m.group(0)
    fwd = [o for o in reqs if o["path"] == "/healthz"][-1]
    assert fwd["peer"] == "203.0.113.7" and fwd["proxy"] == "127.0.0.1", fwd
    bad = [o for o in reqs if o["path"] == "/readyz"][-1]
    assert bad["peer"] == "127.0.0.1" and "proxy" not in bad, bad
    # Without --trusted-proxy, anyone could claim any address.
    with Daemon(args=["--quiet=false"]) as d:
        d.request("GET", "/healthz", headers={"X-Forwarded-For": "1.2.3.4"})
    reqs = [json.loads(ln) for ln in d.log_text().splitlines()
            if '"event":"request"' in ln]
    assert reqs[-1]["peer"] == "127.0.0.1", reqs[-1]


# ---- metrics ---------------------------------------------------------

def test_metrics():
    """/metrics has lsmi_build_info, the process's metrics, a method label
    on the request counters, and the data directory's bytes, which add up
    to its files."""
    with Daemon() as d:
        ds = upload_ok(d)
        j = run_job(d, ds["id"])
        d.request("DELETE", "/v1/jobs/job_nope")
        deadline = time.time() + 5
        while time.time() < deadline:
            m = d.request("GET", "/metrics").body.decode()
            if 'method="DELETE",status="404"' in m:
                break
            time.sleep(0.05)
        assert 'lsmi_build_info{version="' in m, m[:500]
        for name in ("process_resident_memory_bytes",
                     "process_cpu_seconds_total", "process_open_fds",
                     "process_start_time_seconds"):
            v = metric(m, name)
            assert v is not None and v > 0, name
        assert abs(metric(m, "process_start_time_seconds") - time.time()) < \
            3600
        assert re.search(r'lsmi_http_requests_total\{route="/v1/jobs/\{id\}",'
                         r'method="DELETE",status="404"\} 1', m)
        assert re.search(r'lsmi_http_requests_total\{route="/v1/datasets",'
                         r'method="POST",status="201"\} 1', m)
        data = d.data_dir
        size = sum(os.path.getsize(os.path.join(data, "results", n))
                   for n in of_job(files(data, "results"), j))
        assert metric(m, 'lsmi_data_dir_bytes{kind="datasets"}') == len(SMALL)
        assert metric(m, 'lsmi_data_dir_bytes{kind="results"}') == size > 0
        assert metric(m, 'lsmi_data_dir_bytes{kind="store"}') > 0
        st = os.statvfs(data)
        free = metric(m, "lsmi_data_dir_free_bytes")
        assert abs(free - st.f_bavail * st.f_frsize) < 64 << 20, free


# ---- the store's schema ----------------------------------------------

OLD_LAYOUT = """
CREATE TABLE datasets(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,
 name TEXT NOT NULL, format TEXT NOT NULL, sha256 TEXT NOT NULL,
 bytes INTEGER NOT NULL, classes INTEGER NOT NULL, n_train INTEGER NOT NULL,
 n_val INTEGER NOT NULL, d1 INTEGER NOT NULL, d2 INTEGER NOT NULL,
 val_fraction REAL NOT NULL, created_at REAL NOT NULL);
CREATE UNIQUE INDEX datasets_sha ON datasets(tenant, sha256);
CREATE TABLE jobs(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,
 dataset_id TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,
 progress TEXT, created_at REAL NOT NULL, started_at REAL,
 finished_at REAL, error TEXT, summary TEXT, timings TEXT,
 attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX jobs_tenant ON jobs(tenant);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_dataset ON jobs(dataset_id);
CREATE TABLE idempotency(tenant TEXT NOT NULL, key TEXT NOT NULL,
 request_hash TEXT NOT NULL, job_id TEXT NOT NULL, created_at REAL NOT NULL,
 PRIMARY KEY(tenant, key));
"""


def test_old_store_upgrades():
    """A data directory whose store has the first layout (no version, no
    cancel_requested, no pending table) is upgraded at start, keeps its
    dataset and job (whose result files it measures) and can run jobs; a store of a newer version than this
    binary is refused, untouched."""
    data = os.path.join(tempfile.mkdtemp(dir=WORK), "data")
    for sub in ("datasets", "results", "tmp"):
        os.makedirs(os.path.join(data, sub))
    with open(os.path.join(data, "datasets", "ds_old"), "wb") as f:
        f.write(SMALL)
    db = sqlite3.connect(os.path.join(data, "lsmi.db"))
    db.executescript(OLD_LAYOUT)
    db.execute("INSERT INTO datasets VALUES ('ds_old', 'default', 'old', "
               "'npz', 'abc', ?, 2, 320, 80, 2, 2, 0.0, 1.7e9)",
               (len(SMALL),))
    # A job that succeeded before result_bytes existed: the upgrade
    # measures its result files, so that the tenant's quota counts them.
    db.execute("INSERT INTO jobs (id, tenant, dataset_id, state, params, "
               "created_at, finished_at) VALUES ('job_old', 'default', "
               "'ds_old', 'succeeded', '{}', 1.7e9, 1.7e9)")
    for split, size in (("train", 100), ("val", 50)):
        with open(os.path.join(data, "results", "job_old." + split),
                  "wb") as f:
            f.write(b"\0" * size)
    db.commit()
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    db.close()
    with Daemon(data_dir=data) as d:
        line = wait_log(d, lambda o: o.get("event") == "store_schema")
        assert line["from"] == 0 and line["to"] >= 2, line
        assert d.request("GET", "/v1/datasets/ds_old").json()["name"] == "old"
        m = d.request("GET", "/metrics").body.decode()
        assert metric(m, 'lsmi_data_dir_bytes{kind="results"}') == 150, m
        run_job(d, "ds_old")
    assert sql(data, "SELECT result_bytes FROM jobs WHERE id = 'job_old'") \
        == [(150,)]
    v = sql(data, "PRAGMA user_version")[0][0]
    assert v >= 2, v
    sql(data, "PRAGMA user_version = 999")
    rc, err = refused_start(data)
    assert rc == 1 and "newer" in err and "999" in err, (rc, err)
    assert sql(data, "PRAGMA user_version") == [(999,)]


def cleanup():
    import shutil
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    rc = run_tests(globals(), sys.argv, work=WORK)
    sys.exit(rc)
