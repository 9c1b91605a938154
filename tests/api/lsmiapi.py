"""lsmiapi.py — helpers the API tests share (Python 3 standard library only).

Starts the real daemon ($LSMI_BUILD/lsmi serve) on a free loopback port with a
temp data directory, talks HTTP to it with http.client, and stops it again.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback

BUILD = os.environ.get("LSMI_BUILD", "build")
LSMI = os.path.join(BUILD, "lsmi")
ASAN = "address" in BUILD
# Sanitizer builds are several times slower; scale every wait.
SLOW = 6.0 if ASAN else 1.0


# Every daemon's temp data directory lives under this one, which
# remove_session() deletes when the suite ends.
SESSION = tempfile.mkdtemp(prefix="lsmi-api-")


def remove_session():
    import shutil
    shutil.rmtree(SESSION, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode())

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Daemon:
    """One `lsmi serve` process. Use as a context manager."""

    live = []

    def __init__(self, data_dir=None, args=(), env=None, token=None):
        self.tmp = None
        if data_dir is None:
            self.tmp = tempfile.mkdtemp(prefix="daemon-", dir=SESSION)
            data_dir = os.path.join(self.tmp, "data")
        self.data_dir = data_dir
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.token = token
        self.proc = None
        self.port = None
        self.log_path = None
        self.preexec = None  # run in the child before exec (rlimits)

    def start(self):
        self.port = free_port()
        self.log_path = os.path.join(os.path.dirname(self.data_dir),
                                     "daemon-%d.log" % self.port)
        self.log = open(self.log_path, "ab")
        cmd = [LSMI, "serve", "--listen", "127.0.0.1:%d" % self.port,
               "--data-dir", self.data_dir, "--quiet"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env=self.env, preexec_fn=self.preexec)
        Daemon.live.append(self)
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited with %d: %s" %
                                   (self.proc.returncode, self.log_text()[-2000:]))
            try:
                if self.request("GET", "/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon did not come up")

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, token=None,
                timeout=30):
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout * SLOW)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stops the daemon; returns its exit status (-9 for kill -9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        if self in Daemon.live:
            Daemon.live.remove(self)
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is not None:
            print("--- daemon (exit %s) log tail:\n%s" %
                  (rc, self.log_text()[-3000:]))

    # ---- API helpers ----

    def upload(self, data, query="", token=None):
        return self.request("POST", "/v1/datasets" + query, body=data,
                            headers={"Content-Type":
                                     "application/octet-stream"},
                            token=token)

    def submit(self, dataset_id, params=None, key=None, token=None):
        h = {"Idempotency-Key": key} if key else None
        body = {"dataset_id": dataset_id}
        if params is not None:
            body["params"] = params
        return self.request("POST", "/v1/jobs", body=body, headers=h,
                            token=token)

    def job(self, job_id, token=None):
        r = self.request("GET", "/v1/jobs/" + job_id, token=token)
        assert r.status == 200, (r.status, r.body)
        return r.json()

    def wait_job(self, job_id, states=("succeeded", "failed", "cancelled"),
                 timeout=120, token=None):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            j = self.job(job_id, token=token)
            if j["state"] in states:
                return j
            time.sleep(0.05)
        raise AssertionError("job %s stuck in %s" % (job_id, j["state"]))

    def wait_progress(self, job_id, timeout=60, settle=0.2):
        """Waits until the job runs (and has had a moment to train).

        The core reports an epoch only when every model of a family has
        completed it, so with fewer threads than models the first report
        can come late; "running" is what the tests need."""
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            j = self.job(job_id)
            if j["state"] == "running":
                time.sleep(settle * SLOW)
                return self.job(job_id)
            assert j["state"] == "queued", j
            time.sleep(0.02)
        raise AssertionError("job %s never started" % job_id)


def cleanup_all(keep=()):
    """Stops every live daemon but those in keep."""
    for d in list(Daemon.live):
        if d in keep:
            continue
        try:
            d.stop(signal.SIGKILL)
        except Exception:
            pass


class Skip(Exception):
    """Raised by a test that cannot run here (it says why)."""


def fill(path, leave=0):
    """Writes a file until the file system has at most `leave` bytes free
    (0: full); its path."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = 1 << 20
        while size >= 1:
            st = os.statvfs(path)
            if leave and st.f_bavail * st.f_frsize <= leave:
                break
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    return filler


class Tmpfs:
    """A tmpfs of `size` mounted at a fresh directory of `parent` (the
    session's by default), unmounted on exit; Skip where it cannot be."""

    def __init__(self, size, parent=None):
        self.size = size
        self.path = tempfile.mkdtemp(prefix="tmpfs-", dir=parent or SESSION)
        self.mounted = False

    def __enter__(self):
        if os.geteuid() != 0:
            raise Skip("mounting a tmpfs needs root")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" %
                            self.size, "tmpfs", self.path],
                           capture_output=True)
        if p.returncode != 0:
            raise Skip("cannot mount a tmpfs: %s" % p.stderr.decode().strip())
        self.mounted = True
        return self

    def __exit__(self, *exc):
        cleanup_all()  # no daemon may keep the mount busy
        if self.mounted:
            for _ in range(20):
                if subprocess.run(["umount", self.path]).returncode == 0:
                    break
                time.sleep(0.2)


def run_tests(names, argv, work=None, setup=None):
    """Runs the test_* functions of `names` (a module's globals), or those
    argv[1:] names, one line each with its time; a failure prints its
    traceback and the live daemons' log tails, a Skip its reason. setup()
    runs first (its failure counts as one); the daemons it starts serve
    every test, the others are stopped after each. Stops every daemon, removes
    `work` and the session's directories, prints "N passed, N failed,
    N skipped" last; returns the exit status."""
    tests = [(n, f) for n, f in sorted(names.items())
             if n.startswith("test_") and callable(f)]
    if len(argv) > 1:
        tests = [(n, f) for n, f in tests if n in argv[1:]]
    passed = failed = skipped = 0
    shared = []
    try:
        if setup:
            setup()
            shared = list(Daemon.live)
        for name, fn in tests:
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("ok   %-32s %.1fs" % (name, time.time() - t0),
                      flush=True)
            except Skip as e:
                skipped += 1
                print("skip %-32s %s" % (name, e), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s" % name, flush=True)
                traceback.print_exc()
                for dmn in list(Daemon.live):
                    print("--- daemon log tail:\n" + dmn.log_text()[-3000:])
            finally:
                cleanup_all(keep=shared)
    except Exception:
        failed += 1
        traceback.print_exc()
    finally:
        cleanup_all()
        if work:
            shutil.rmtree(work, ignore_errors=True)
        remove_session()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


def synth(path, kind="gaussian", n=400, seed=0):
    subprocess.run([LSMI, "synth", kind, "--out", path, "--n", str(n),
                    "--seed", str(seed)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(path, "rb") as f:
        return f.read()


def json_dataset(n=200, seed=1):
    """A small dataset in the JSON format, written by hand."""
    import random
    rnd = random.Random(seed)

    def split(m):
        y = [i % 2 for i in range(m)]
        x1 = [[yy + rnd.gauss(0, 0.5), rnd.gauss(0, 0.5)] for yy in y]
        x2 = [[yy + rnd.gauss(0, 0.5)] for yy in y]
        return {"x1": x1, "x2": x2, "y": y}

    return json.dumps({"train": split(int(n * 0.8)),
                       "val": split(n - int(n * 0.8))}).encode()


def assert_problem(r, status, field=None):
    assert r.status == status, "expected %d, got %d: %r" % (status, r.status,
                                                           r.body[:300])
    ct = r.header("Content-Type") or ""
    assert ct.startswith("application/problem+json"), ct
    p = r.json()
    for k in ("type", "title", "status", "detail"):
        assert k in p, (k, p)
    assert p["status"] == status, p
    assert p["detail"], p
    if field is not None:
        assert p.get("field") == field, (field, p)
    return p


def write_results(path, y, cols, rows=None, ids=None, names=None,
                  version=4):
    """Writes a result file (server/resfile.h) of len(y) rows: y (ints) and
    cols (9 or 13 lists of floats, in the file's order), with its CRC
    trailer; version 4 (the daemon's) with, when given, the rows'
    positions, their ids (text; integers when every one is an int) and the
    class names, or version 3 (what daemons before them wrote: none of
    those). For tests that need a large result without a fit, or an old
    one."""
    import array
    import struct
    import zlib
    n = len(y)

    def texts(items):
        offs, blob = [], b""
        for t in items:
            offs.append(len(blob))
            blob += str(t).encode() + b"\0"
        blob += b"\0" * ((-len(blob)) % 8)
        return array.array("Q", offs).tobytes() + blob, len(blob)

    ys = array.array("i", y).tobytes()
    body = ys + b"\0" * ((-len(ys)) % 8)
    for c in cols:
        body += array.array("d", c).tobytes()
    if version == 3:
        assert rows is None and ids is None and names is None
        head = b"LSMIRES3" + struct.pack("<QQ", n, len(cols))
    else:
        flags, id_bytes, name_bytes = 0, 0, 0
        if rows is not None:
            flags |= 1
            body += array.array("Q", rows).tobytes()
        if ids is not None:
            flags |= 2 | (4 if all(isinstance(i, int) for i in ids) else 0)
            part, id_bytes = texts(ids)
            body += part
        if names is not None:
            flags |= 8 | (16 if all(isinstance(k, int) for k in names)
                          else 0)
            part, name_bytes = texts(names)
            body += part
        head = b"LSMIRES4" + struct.pack(
            "<QQQQQQ", n, len(cols), flags, len(names or []), id_bytes,
            name_bytes)
    body = head + body
    with open(path, "wb") as f:
        f.write(body)
        f.write(struct.pack("<Q", zlib.crc32(body)) + b"LSMICRC1")


def npz_bytes(arrays):
    """An uncompressed .npz of arrays {name: (dtype, shape, values)}, made
    with the standard library (the tests' Python need not have NumPy):
    dtype "<f4", "<i8" or "<UN" (text of at most N characters); values
    flat, in C order."""
    import array
    import io
    import struct
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, (dtype, shape, values) in arrays.items():
            if dtype == "<f4":
                data = array.array("f", values).tobytes()
            elif dtype == "<i8":
                data = array.array("q", values).tobytes()
            else:
                width = int(dtype[2:])
                data = b"".join(v.ljust(width, "\0").encode("utf-32-le")
                                for v in values)
            head = ("{'descr': '%s', 'fortran_order': False, 'shape': %s, }"
                    % (dtype, repr(tuple(shape))))
            head += " " * ((-(10 + len(head) + 1)) % 64) + "\n"
            z.writestr(name + ".npy", b"\x93NUMPY\x01\x00" +
                       struct.pack("<H", len(head)) + head.encode() + data)
    return out.getvalue()


# Which array is which, and joining results back (issue 16): an upload
# that names its keys.
CLASSES = ["bird", "cat", "dog"]  # the sorted labels: y 0, 1, 2
NAMED_KEYS = "?x1=feat_a&x2=feat_b&y=label&id=sample_id"


def named_dataset(n=200, seed=5):
    """An .npz as a researcher saves one: features feat_a (n, 3) and
    feat_b (n, 2), string labels in `label` (in the file's order dog, bird,
    cat, ...), integer sample ids 5000.. in `sample_id`, and no val split.
    Returns the bytes, the labels and the ids, by row."""
    import random
    rnd = random.Random(seed)
    order = ["dog", "bird", "cat"]
    labels = [order[(i * 7) % 3] for i in range(n)]
    ids = [5000 + 3 * i for i in range(n)]
    x1, x2 = [], []
    for lab in labels:
        k = CLASSES.index(lab)
        x1 += [k + rnd.gauss(0, 0.5), rnd.gauss(0, 1), -k + rnd.gauss(0, 0.5)]
        x2 += [(k == 1) + rnd.gauss(0, 0.5), rnd.gauss(0, 1)]
    data = npz_bytes({"feat_a": ("<f4", (n, 3), x1),
                      "feat_b": ("<f4", (n, 2), x2),
                      "label": ("<U4", (n,), labels),
                      "sample_id": ("<i8", (n,), ids)})
    return data, labels, ids


def sse_events(d, path, timeout=60, token=None):
    """Reads a server-sent event stream to its end: [(event, id, data)]."""
    h = {}
    tok = token if token is not None else d.token
    if tok:
        h["Authorization"] = "Bearer " + tok
    conn = http.client.HTTPConnection("127.0.0.1", d.port,
                                      timeout=timeout * SLOW)
    try:
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        assert r.status == 200, (r.status, r.read())
        assert r.getheader("Content-Type") == "text/event-stream"
        text = r.read().decode()
    finally:
        conn.close()
    out = []
    for block in text.split("\n\n"):
        ev, eid, data = "message", None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("id: "):
                eid = int(line[4:])
            elif line.startswith("data: "):
                data += line[6:]
        if data:
            out.append((ev, eid, json.loads(data)))
    return out


def rss_kb(pid):
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out["VmRSS"], out["VmHWM"]
