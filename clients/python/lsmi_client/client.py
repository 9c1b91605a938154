"""lsmi_client.client — a client of `lsmi serve` (Python standard library
and NumPy; pandas when it is there).

    from lsmi_client import Client
    c = Client("http://127.0.0.1:8080", token="...")
    rows = c.fit(x1, x2, y, epochs_entropy=30)      # a DataFrame

fit() is upload() + submit() + wait() + results(). upload() builds an .npz in
memory (train_* and val_* arrays, or x1, x2, y for lsmi to draw a val
split), so nothing touches the disk. Every error the server answers is a
ProblemError with its problem detail (RFC 9457): status, title, detail and
the field concerned.
"""
import http.client
import io
import json
import sys
import time
import urllib.parse

import numpy as np

_DONE = ("succeeded", "failed", "cancelled")


class ProblemError(Exception):
    """An error answered by the server, with its problem detail."""

    def __init__(self, status, title, detail, field=None, body=None):
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.body = body or {}
        where = " [%s]" % field if field else ""
        super().__init__("%s %s: %s%s" % (status, title, detail, where))


class JobError(ProblemError):
    """A job that ended failed or cancelled; .job is its record."""

    def __init__(self, job):
        err = job.get("error") or {}
        self.job = job
        super().__init__(err.get("status", 0),
                         err.get("title") or "job %s" % job["state"],
                         err.get("detail") or
                         "the job ended %s" % job["state"],
                         err.get("field"), err)


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()
                     if v is not None})
    return buf.getvalue()


def _have_pandas():
    try:
        import pandas  # noqa: F401
        return True
    except ImportError:
        return False


def _print_progress(job):
    """The default progress report: one line on stderr per change of the
    whole percentage, updated in place on a terminal."""
    p = job.get("progress") or {}
    pct = int(100 * (p.get("fraction") or 0))
    line = "lsmi: job %s %s %3d%%" % (job["id"], job["state"], pct)
    if p.get("epochs"):
        line += "  epoch %s/%s" % (p.get("epoch", 0), p["epochs"])
    tty = sys.stderr.isatty()
    end = "\n" if not tty or job["state"] in _DONE else ""
    sys.stderr.write(("\r" if tty else "") + line + end)
    sys.stderr.flush()


class Client:
    """A client of one lsmi service. url: "http://HOST:PORT"; token: the
    bearer token (None when the service runs without tokens)."""

    def __init__(self, url, token=None, timeout=60.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("url must be http://HOST[:PORT], not %r" % url)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.base = u.path.rstrip("/")
        self.token = token
        self.timeout = timeout

    # ---- transport ----

    def _request(self, method, path, query=None, body=None, headers=None):
        """The answer's JSON (None for an empty body), or a ProblemError."""
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        q = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base + path + ("?" + urllib.parse.urlencode(q) if q else "")
        cls = (http.client.HTTPSConnection if self.scheme == "https"
               else http.client.HTTPConnection)
        conn = cls(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, url, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            ctype = r.getheader("Content-Type") or ""
        finally:
            conn.close()
        doc = None
        if data and "json" in ctype:
            doc = json.loads(data.decode())
        if r.status >= 400:
            p = doc if isinstance(doc, dict) else {}
            raise ProblemError(r.status, p.get("title", r.reason),
                               p.get("detail", data[:200].decode(
                                   errors="replace")),
                               p.get("field"), p)
        return doc

    # ---- datasets ----

    def upload(self, x1, x2, y, val=None, ids=None, val_ids=None, name=None,
               val_fraction=None):
        """Uploads a dataset made of arrays: x1 (n, d1), x2 (n, d2), y (n,)
        of any label values; val an optional (x1, x2, y) of the val split
        (without one, the service draws val_fraction, default 0.2, of
        train); ids, val_ids optional sample ids (ints or strings). Returns
        the dataset record."""
        if val is None and val_ids is not None:
            raise ValueError("val_ids without val")
        if val is None:
            arrays = {"x1": x1, "x2": x2, "y": y, "id": ids}
        else:
            vx1, vx2, vy = val
            arrays = {"train_x1": x1, "train_x2": x2, "train_y": y,
                      "val_x1": vx1, "val_x2": vx2, "val_y": vy}
            if ids is not None or val_ids is not None:
                arrays.update(train_id=ids, val_id=val_ids)
        return self.upload_bytes(_npz_bytes(arrays), name=name,
                                 val_fraction=val_fraction)

    def upload_bytes(self, data, name=None, val_fraction=None, **keys):
        """Uploads a file's bytes (any format lsmi reads); keys x1, x2, y,
        id name the arrays when they are not the usual names. Returns the
        dataset record."""
        query = dict(name=name, val_fraction=val_fraction, **keys)
        return self._request("POST", "/v1/datasets", query, data,
                             {"Content-Type": "application/octet-stream"})

    def upload_file(self, path, name=None, val_fraction=None, **keys):
        """upload_bytes of the file at path."""
        with open(path, "rb") as f:
            return self.upload_bytes(f.read(), name=name,
                                     val_fraction=val_fraction, **keys)

    # ---- jobs ----

    def submit(self, dataset_id, idempotency_key=None, **params):
        """Starts a fit of the dataset with params (lsmi fit's flags with _
        for -); returns the job record."""
        h = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/jobs", body={
            "dataset_id": dataset_id, "params": params}, headers=h)

    def job(self, job_id):
        """The job's record: state, progress, params, summary, error."""
        return self._request("GET", "/v1/jobs/" + job_id)

    def cancel(self, job_id):
        """Cancels a queued or running job; returns its record. (The
        server deletes a job that has already finished, with its results,
        and then this returns None.)"""
        return self._request("DELETE", "/v1/jobs/" + job_id)

    def wait(self, job_id, progress=True, poll=0.25, timeout=None):
        """Waits for the job to end and returns its record. progress: True
        prints a line on stderr as the job moves, a callable gets each new
        record, False stays quiet. A failed or cancelled job raises
        JobError; timeout (seconds) a TimeoutError."""
        report = _print_progress if progress is True else progress or None
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            j = self.job(job_id)
            seen = (j["state"], json.dumps(j.get("progress"), sort_keys=True))
            if report and seen != last:
                report(j)
            last = seen
            if j["state"] == "succeeded":
                return j
            if j["state"] in _DONE:
                raise JobError(j)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("job %s still %s" % (job_id, j["state"]))
            time.sleep(poll)

    # ---- results ----

    def results(self, job_id, split=None, sort=None, page_size=5000,
                frame=None):
        """Every result row of the job (both splits, or split="train" /
        "val"), fetched page by page: a pandas DataFrame when pandas can be
        imported (frame=None) or frame=True, else a dict of NumPy arrays,
        one per column."""
        rows = []
        for part in (split,) if split else ("train", "val"):
            rows.extend(self._rows(job_id, part, sort, page_size))
        return _columns(rows, _have_pandas() if frame is None else frame)

    def _rows(self, job_id, split, sort, page_size):
        """The rows of one split, a page at a time (the service caps a
        page at its --page-limit: the next page starts where this one
        ended). Each row carries its split."""
        rows, offset = [], 0
        while True:
            page = self._request("GET", "/v1/jobs/%s/results" % job_id, {
                "split": split, "sort": sort, "offset": offset,
                "limit": page_size, "format": "json"})
            got = page.get("rows") or []
            for r in got:
                r.setdefault("split", split)
            rows.extend(got)
            offset += len(got)
            if not got or offset >= page.get("total", 0):
                return rows

    def fit(self, x1, x2, y, val=None, ids=None, val_ids=None,
            progress=True, name=None, val_fraction=None, **params):
        """Uploads the arrays, fits them with params and returns the rows
        (results()); the job's record is on the result as .attrs["job"]
        for a DataFrame, or under the key "job" of the dict."""
        ds = self.upload(x1, x2, y, val=val, ids=ids, val_ids=val_ids,
                         name=name, val_fraction=val_fraction)
        job = self.submit(ds["id"], **params)
        done = self.wait(job["id"], progress=progress)
        out = self.results(job["id"])
        if isinstance(out, dict):
            out["job"] = done
        else:
            out.attrs["job"] = done
        return out


def _columns(rows, frame):
    """Rows (dicts) as a DataFrame or a dict of arrays, columns in the
    order the server gives them."""
    names = []
    for r in rows[:1] + rows[1:]:
        for k in r:
            if k not in names:
                names.append(k)
    cols = {k: [r.get(k) for r in rows] for k in names}
    if frame:
        import pandas as pd
        return pd.DataFrame(cols, columns=names)
    out = {}
    for k, v in cols.items():
        a = np.asarray(v)
        if a.dtype == object and all(x is None or isinstance(x, (int, float))
                                     for x in v):
            a = np.array([np.nan if x is None else x for x in v], dtype=float)
        out[k] = a
    return out
