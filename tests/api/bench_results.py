#!/usr/bin/env python3
"""bench_results.py — what results requests cost on a large result file,
measured on the real daemon (not part of `make test`; `make api-bench`).

A small job is fitted, then its val result file is replaced by one of N
rows written directly (lsmiapi.write_results; --v2 writes the checksum-less
version 2 that older daemons read), so no large fit is needed. Reported: the
daemon's RSS and peak RSS around each request, and its latency: 10-row pages
sorted by a column (the first builds the cached order), 8 of them at once,
the aggregates of r, u1, u2, s, and the full CSV export.

  tests/api/bench_results.py [--rows N] [--lsmi BINARY] [--v2]
"""
import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lsmiapi  # noqa: E402
from lsmiapi import Daemon, rss_kb, synth, write_results  # noqa: E402


def write_v2(path, y, cols):
    import array
    import struct
    n = len(y)
    with open(path, "wb") as f:
        f.write(b"LSMIRES2" + struct.pack("<QQ", n, len(cols)))
        ys = array.array("i", y).tobytes()
        f.write(ys + b"\0" * ((-len(ys)) % 8))
        for c in cols:
            f.write(array.array("d", c).tobytes())


class AnonPeak:
    """Samples the daemon's RssAnon (its own memory, not the file pages its
    mappings touch) every 2 ms while in use: the peak of one request."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False

    def _anon(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def __enter__(self):
        self.peak = self._anon()
        self.t = threading.Thread(target=self._run)
        self.t.start()
        return self

    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, self._anon())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.stop = True
        self.t.join()


def timed(d, path):
    t0 = time.perf_counter()
    r = d.request("GET", path, timeout=600)
    ms = (time.perf_counter() - t0) * 1e3
    assert r.status == 200, (path, r.status, r.body[:300])
    return r, ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--lsmi", default=lsmiapi.LSMI)
    ap.add_argument("--v2", action="store_true")
    a = ap.parse_args()
    lsmiapi.LSMI = a.lsmi
    rnd = random.Random(1)
    n = a.rows
    work = os.path.join(lsmiapi.SESSION, "bench")
    os.makedirs(work)
    small = synth(os.path.join(work, "s.npz"), n=400)
    try:
        with Daemon() as d:
            ds = d.upload(small).json()
            jid = d.submit(ds["id"], {"epochs_discriminator": 2,
                                      "epochs_entropy": 2,
                                      "threads": 1}).json()["id"]
            d.wait_job(jid)
            y = [rnd.randrange(3) for _ in range(n)]
            cols = [[rnd.gauss(0, 1) for _ in range(n)] for _ in range(9)]
            path = os.path.join(d.data_dir, "results", jid + ".val")
            (write_v2 if a.v2 else write_results)(path, y, cols)
            del y, cols
            base = "/v1/jobs/%s/results" % jid
            pid = d.proc.pid
            print("%s, %d rows (%.0f MB file)" % (a.lsmi, n,
                                                   os.path.getsize(path) / 1e6))

            def reset_peak():
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("5")  # VmHWM := VmRSS

            def report(what, path, runs=1):
                for i in range(runs):
                    reset_peak()
                    rss0, _ = rss_kb(pid)
                    with AnonPeak(pid) as ap:
                        r, ms = timed(d, path)
                    rss1, hwm = rss_kb(pid)
                    print("  %-40s %8.1f ms  RSS %6d -> %6d KiB, peak %6d "
                          "(own memory %6d)"
                          % (what + (" #%d" % (i + 1) if runs > 1 else ""),
                             ms, rss0, rss1, hwm, ap.peak))
                return r
            report("page: 10 rows, sort=-s", base + "?sort=-s&limit=10", 3)
            report("page: 10 rows, sort=u1, offset n/2",
                   base + "?sort=u1&limit=10&offset=%d" % (n // 2), 2)
            reset_peak()
            _, hwm0 = rss_kb(pid)
            errs = []

            def one():
                try:
                    timed(d, base + "?sort=-r&limit=10")
                except Exception as e:  # noqa: BLE001
                    errs.append(e)
            ts = [threading.Thread(target=one) for _ in range(8)]
            t0 = time.perf_counter()
            with AnonPeak(pid) as ap:
                for t in ts:
                    t.start()
                time.sleep(0.05)
                _, hz = timed(d, "/healthz")
                for t in ts:
                    t.join()
            _, hwm1 = rss_kb(pid)
            print("  8 pages sort=-r at once (first build): %.0f ms, peak "
                  "RSS %d -> %d KiB (own memory %d), /healthz meanwhile "
                  "%.1f ms%s" %
                  ((time.perf_counter() - t0) * 1e3, hwm0, hwm1, ap.peak, hz,
                   " ERRORS %r" % errs if errs else ""))
            if "aggregates" not in open(a.lsmi, "rb").read().decode(
                    "latin-1"):
                print("  (this binary has no aggregates or streamed export)")
                return
            report("aggregates r,u1,u2,s, 30 bins (first)",
                   "/v1/jobs/%s/aggregates?bins=30" % jid, 3)
            r = report("CSV export, every row", base + "?format=csv")
            print("  CSV: %d bytes, X-Total-Count %s" %
                  (len(r.body), r.header("X-Total-Count")))
            report("CSV export sorted by -s", base + "?format=csv&sort=-s")
    finally:
        lsmiapi.cleanup_all()
        lsmiapi.remove_session()


if __name__ == "__main__":
    main()
