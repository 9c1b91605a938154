#!/usr/bin/env python3
"""test_client.py — clients/python (lsmi_client) against a real daemon.

Runs with a Python that has NumPy and pandas (Debian's /usr/bin/python3 with
python3-numpy and python3-pandas; tests/clients/run.sh picks it). One daemon
serves every test (tests/api/lsmiapi.py starts it on a free loopback port,
with a token). The arrays path is tested in a subprocess in which pandas
cannot be imported. The last line is "N passed, N failed".
Run one test: tests/clients/run.sh test_fit_dataframe
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "api"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lsmiapi import Daemon, run_tests  # noqa: E402

from lsmi_client import Client, JobError, ProblemError  # noqa: E402

TOKEN = "client-test-token-0123"
FAST = {"epochs_discriminator": 2, "epochs_entropy": 2, "threads": 1}
LONG = {"epochs_discriminator": 10000, "epochs_entropy": 10000, "threads": 1}
DAEMON = None


def data(n=200, seed=0, labels=None):
    """x1, x2, y of n samples of two classes (labels: the two values)."""
    rs = np.random.RandomState(seed)
    k = np.arange(n) % 2
    x1 = (k[:, None] + 0.5 * rs.randn(n, 2)).astype(np.float32)
    x2 = (k[:, None] + 0.5 * rs.randn(n, 3)).astype(np.float32)
    y = k if labels is None else np.array(labels)[k]
    return x1, x2, y


def client(token=TOKEN):
    return Client("http://127.0.0.1:%d" % DAEMON.port, token)


def test_fit_dataframe():
    x1, x2, y = data()
    seen = []
    rows = client().fit(x1, x2, y, progress=seen.append, **FAST)
    assert isinstance(rows, pd.DataFrame), type(rows)
    assert len(rows) == 200, len(rows)  # val drawn: 0.2 of the 200
    assert (rows["split"] == "val").sum() == 40
    for col in ("index", "split", "y", "r", "u1", "u2", "s", "i1", "i2",
                "i12", "h1", "h2"):
        assert col in rows.columns, (col, list(rows.columns))
    job = rows.attrs["job"]
    assert job["state"] == "succeeded", job
    assert job["params"]["epochs_entropy"] == 2
    assert seen and seen[-1]["state"] == "succeeded", seen
    # the identities of the parts hold per row
    assert np.allclose(rows["r"] + rows["u1"], rows["i1"], atol=1e-9)


ARRAYS = r"""
import sys
sys.modules["pandas"] = None  # import pandas fails: the arrays path
sys.path.insert(0, sys.argv[1])
import numpy as np
from lsmi_client import Client
rs = np.random.RandomState(1)
k = np.arange(120) % 2
x1 = k[:, None] + 0.5 * rs.randn(120, 2)
x2 = k[:, None] + 0.5 * rs.randn(120, 2)
c = Client(sys.argv[2], sys.argv[3])
out = c.fit(x1[:100], x2[:100], k[:100], val=(x1[100:], x2[100:], k[100:]),
            epochs_discriminator=2, epochs_entropy=2)
assert isinstance(out, dict), type(out)
assert out["job"]["state"] == "succeeded"
assert isinstance(out["r"], np.ndarray) and out["r"].dtype == float
assert len(out["r"]) == 120 and list(out["split"]).count("val") == 20
print("arrays ok")
"""


def test_fit_arrays_without_pandas():
    r = subprocess.run(
        [sys.executable, "-c", ARRAYS, os.path.join(ROOT, "clients", "python"),
         "http://127.0.0.1:%d" % DAEMON.port, TOKEN],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "arrays ok" in r.stdout, (r.stdout, r.stderr)
    # the default progress: plain lines on stderr (not a terminal)
    assert " succeeded 100%" in r.stderr and "\r" not in r.stderr, r.stderr


def test_upload_labels_ids_and_val():
    c = client()
    x1, x2, y = data(labels=["cat", "dog"])
    ds = c.upload(x1, x2, y, ids=["s%d" % i for i in range(200)],
                  name="strings")
    assert ds["name"] == "strings" and ds["classes"] == 2, ds
    assert ds["val_fraction"] == 0.2 and ds["splits"]["val"]["n"] == 40, ds
    ds = c.upload(x1[:150], x2[:150], y[:150],
                  val=(x1[150:], x2[150:], y[150:]),
                  ids=np.arange(150), val_ids=np.arange(150, 200))
    assert ds["val_fraction"] == 0 and ds["splits"]["val"]["n"] == 50, ds
    # a file's bytes, with the keys that name its arrays
    path = os.path.join(ROOT, "tests", "data", "user_named.npz")
    ds = c.upload_file(path, x1="feat_a", x2="feat_b", y="label")
    assert ds["splits"]["train"]["n"] == 15, ds


def test_results_pages():
    c = client()
    x1, x2, y = data(n=100, seed=2)
    ds = c.upload(x1, x2, y)
    job = c.submit(ds["id"], **FAST)
    c.wait(job["id"], progress=False)
    whole = c.results(job["id"], page_size=1000)
    paged = c.results(job["id"], page_size=7)
    assert len(whole) == len(paged) == 100
    assert whole.equals(paged)
    val = c.results(job["id"], split="val", sort="-r", frame=False)
    assert len(val["r"]) == 20 and list(val["r"]) == sorted(val["r"],
                                                            reverse=True)


def test_cancel():
    c = client()
    x1, x2, y = data(n=100, seed=3)
    job = c.submit(c.upload(x1, x2, y)["id"], **LONG)
    deadline = time.time() + 60
    while c.job(job["id"])["state"] == "queued" and time.time() < deadline:
        time.sleep(0.05)
    c.cancel(job["id"])
    try:
        c.wait(job["id"], progress=False, timeout=120)
        raise AssertionError("a cancelled job waited as if it succeeded")
    except JobError as e:
        assert e.job["state"] == "cancelled", e.job


def test_failed_job():
    c = client()
    x1, x2, y = data(n=20, seed=4)
    ds = c.upload(x1, x2, y, val_fraction=0.5)
    job = c.submit(ds["id"], val_fraction=0.01, **FAST)  # no row goes to val
    try:
        c.wait(job["id"], progress=False, timeout=120)
        raise AssertionError("a failed job waited as if it succeeded")
    except JobError as e:
        assert e.job["state"] == "failed", e.job
        assert e.status == 422 and e.field == "val_fraction", vars(e)
        assert "leaves no val rows" in e.detail, vars(e)


def test_problems():
    x1, x2, y = data(n=50)
    try:
        client(token="wrong-token").upload(x1, x2, y)
        raise AssertionError("no 401")
    except ProblemError as e:
        assert e.status == 401 and e.title and e.detail, vars(e)
    c = client()
    ds = c.upload(x1, x2, y)
    try:
        c.submit(ds["id"], epochs_entropy=0)
        raise AssertionError("no 422")
    except ProblemError as e:
        assert e.status == 422 and "epochs_entropy" in (e.field or ""), vars(e)
        assert "epochs_entropy" in e.detail
    try:
        c.upload_bytes(b"\x00\x01\x02 not a dataset")
        raise AssertionError("no 415")
    except ProblemError as e:
        assert e.status == 415, vars(e)
    try:
        c.upload(x1[:40], x2[:40], y[:40], val=(x1[40:], x2[40:], y[40:]),
                 val_fraction=0.3)
        raise AssertionError("no 422")
    except ProblemError as e:
        assert e.status == 422 and e.field == "val_fraction", vars(e)
        assert "cannot apply" in e.detail and str(e).startswith("422 ")
    try:
        c.job("job_missing")
        raise AssertionError("no 404")
    except ProblemError as e:
        assert e.status == 404, vars(e)


def start():
    global DAEMON
    DAEMON = Daemon(env={"LSMI_TOKENS": TOKEN + "=lab"}, token=TOKEN).start()


if __name__ == "__main__":
    sys.exit(run_tests(globals(), sys.argv, setup=start))
