#!/usr/bin/env python3
"""bench/bench.py — lsmi against the PyTorch reference, and where lsmi's
time goes.

For each case it generates the data with bench/make_data.py, runs
`lsmi fit FILE --threads 2` (and --threads 1) and the PyTorch reference,
bench/torch_ref.py, at --threads 1 and 2, and reports wall time and peak resident memory of each
process (GNU time's %M, else getrusage of the child), the ratio of the faster reference run to lsmi,
and lsmi's achieved FLOP rate per phase against the single-thread sgemm peak
measured by sgemm_peak on the same kernels. Then a scaling table: lsmi's cost
per epoch as n, d and C grow.

FLOPs are counted analytically (matrix products only; elementwise work and
Adam are left out), H hidden units, K KNIFE components, B-independent:
  MLP forward per row      2 (in H + H H + H C)
  MLP training per row     2 (2 in H + 3 H H + 3 H C)   (forward, dW, dX but
                                                         no dX of the input)
  KNIFE forward per row    K 2 d^2     (one dense (B x d)(d x d) per component)
  KNIFE training per row   3 K 2 d^2   (forward, dz through L^T, dL: dense,
                                        as the reference computes them)
  KNIFE executed per row   K 2 (d(d-1)/2 + (d+2)(d+1)/2)   (what lsmi does:
                                        one strictly lower product forward,
                                        one backward; the targets line
                                        reports this rate too)
  discriminators = epochs_d n_train sum over in in (d1, d2, d1+d2)
  KNIFE          = epochs_e n_train (both modalities)
  evaluation     = (n_train + n_val) (three MLP forwards + two KNIFE forwards)
Discriminator and KNIFE rates divide by the thread CPU seconds lsmi reports
(seconds_disc, seconds_ent: summed over the models' threads), so they are
rates per thread, comparable with the single-thread peak. The evaluation rate
divides by its wall time and the threads that ran it.

Runs shorter than 2 s (lsmi) and the demo's reference runs are repeated three
times, lsmi runs under 0.5 s seven times, and the fastest kept: on a shared
machine the fastest run is the one least disturbed, and a 30 ms run is
disturbed by a spell of load that a 3 s one averages out. Two ratios compare the same scope on both sides, each time
against the faster of the reference's 1- and 2-thread runs:
  own totals     the reference's `seconds.total` (data loading, training,
                 evaluation; no Python/torch start-up) over lsmi's
                 `seconds.total` (file reading, training, evaluation; no
                 process start-up).
  process walls  both whole processes, start-up to exit, as a user waits
                 for them (Python and torch start-up, the dynamic loader,
                 and writing nothing in both). The issue timed the
                 reference this way ("the demo takes about 4.5 s").
The speed targets are judged on both, and each verdict printed.

Python stdlib only; make_data.py and the reference run under $LSMI_REF_PYTHON,
else /usr/bin/python3 (Debian's python3-torch and python3-numpy), checked
before any work (bench/yardstick.py).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import yardstick

H = 64
K = 5
BATCH = 32

# name, make_data args, epochs (disc, ent) for the comparison, reference plan.
# ref: 'full' = at the same epochs at 1 and 2 threads; a number = the expected
# reference seconds at 1 thread (used by --quick to skip long runs).
CASES = [
    dict(name='demo', n=2000, dim=0, C=2, epochs=(30, 30), ref_expect=5, ref_repeat=3),
    dict(name='n20k-d10-C2', n=20000, dim=10, C=2, epochs=(30, 30), ref_expect=45, service=True),
    dict(name='n20k-d128-C10', n=20000, dim=128, C=10, epochs=(30, 30), ref_expect=90, service=True),
    # The big case: lsmi at the full 30+30 epochs (the acceptance run), and
    # both sides at reduced epochs for the ratio.
    # The reference needs ~55 s per (disc + KNIFE) epoch here at 1 thread, so
    # 30+30 epochs would take ~30 min and its 2-thread run (3x slower than
    # 1 thread already at d=128) far longer: both sides run 2+2 epochs for the
    # ratio, the reference at 1 thread only.
    dict(name='n100k-d256-C10', n=100000, dim=256, C=10, epochs=(2, 2), ref_expect=130,
         full_epochs=(30, 30),
         ref_skip={2: 'skipped (est. > 6 min; 2 threads is slower than 1 here)'}),
    # Real encoder sizes (issue 18): image and text features of 768 and 512
    # dimensions, 31 classes, 3+3 epochs against the reference at both
    # thread counts; and the full published 30+30 epochs at n 100,000, lsmi
    # alone (the reference would take hours).
    dict(name='n20k-d768x512-C31', n=20000, dim=768, dim2=512, C=31, epochs=(3, 3),
         ref_expect=210),
    dict(name='n100k-d768x512-C31', n=100000, dim=768, dim2=512, C=31, epochs=(1, 1),
         ref_expect=600, full_epochs=(30, 30), no_1t=True,
         ref_skip={1: 'not run (hours at 30+30; see n20k-d768x512-C31)',
                   2: 'not run (hours at 30+30; see n20k-d768x512-C31)'}),
]

# Scaling points: (axis, n, dim, C); lsmi only, at --scale-epochs.
SCALING = [
    ('n', 10000, 64, 10), ('n', 20000, 64, 10), ('n', 40000, 64, 10), ('n', 80000, 64, 10),
    ('d', 20000, 16, 10), ('d', 20000, 64, 10), ('d', 20000, 128, 10), ('d', 20000, 256, 10),
    ('C', 20000, 128, 2), ('C', 20000, 128, 10), ('C', 20000, 128, 100),
]


# --------------------------------------------------------------------------- utilities
def loadavg():
    try:
        with open('/proc/loadavg') as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return [float('nan')] * 3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# Peak RSS comes from GNU time when it is there: Linux keeps a process's
# high-water RSS across execve, and a child forked from this (large) Python
# process starts with the parent's pages mapped, so wait4's ru_maxrss would
# report the driver's size for small fits. GNU time forks from a small process.
GNU_TIME = '/usr/bin/time' if os.access('/usr/bin/time', os.X_OK) else None


def timed(cmd, rss_file):
    return [GNU_TIME, '-f', '%M', '-o', rss_file] + cmd if GNU_TIME else cmd


def read_rss_mib(rss_file, fallback_kib):
    try:
        with open(rss_file) as f:
            return int(f.read().split()[-1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return fallback_kib / 1024.0


class Run:
    """One child process: wall seconds, peak RSS (MiB), stdout, rc, load."""

    def __init__(self, cmd, env=None, timeout=None):
        self.cmd = cmd
        self.load_before = loadavg()
        rss_fd, rss_file = tempfile.mkstemp(prefix='rss-')
        os.close(rss_fd)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(timed(cmd, rss_file), stdout=out, stderr=err, env=env)
            timer = None
            self.timed_out = False
            if timeout:
                def kill():
                    self.timed_out = True
                    p.kill()
                timer = threading.Timer(timeout, kill)
                timer.start()
            _, status, ru = os.wait4(p.pid, 0)
            self.wall = time.perf_counter() - t0
            if timer:
                timer.cancel()
            p.returncode = os.waitstatus_to_exitcode(status)
            self.rc = p.returncode
            self.rss_mib = read_rss_mib(rss_file, ru.ru_maxrss)
            os.unlink(rss_file)
            self.cpu = ru.ru_utime + ru.ru_stime
            out.seek(0)
            err.seek(0)
            self.stdout = out.read().decode(errors='replace')
            self.stderr = err.read().decode(errors='replace')
        self.load_after = loadavg()

    def ok(self):
        return self.rc == 0 and not self.timed_out


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith('{'):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


# --------------------------------------------------------------------------- flops
def mlp_fwd(i, C):
    return 2.0 * (i * H + H * H + H * C)


def mlp_train(i, C):
    return 2.0 * (2 * i * H + 3 * H * H + 3 * H * C)


def knife_fwd(d):
    return K * 2.0 * d * d


def knife_train_executed(d):
    """Flops lsmi's KNIFE step executes per row: the strictly lower forward
    product (d(d-1)/2 multiply-adds a component) and the one backward
    product, strictly lower in (d+2) x (d+1) (about (d+2)(d+1)/2)."""
    return K * 2.0 * (d * (d - 1) / 2 + (d + 2) * (d + 1) / 2)


def flops(n_train, n_val, d1, d2, C, ed, ee):
    ins = (d1, d2, d1 + d2)
    return dict(
        disc=ed * n_train * sum(mlp_train(i, C) for i in ins),
        ent=ee * n_train * 3.0 * (knife_fwd(d1) + knife_fwd(d2)),
        ent_executed=ee * n_train * (knife_train_executed(d1) + knife_train_executed(d2)),
        eval=(n_train + n_val) * (sum(mlp_fwd(i, C) for i in ins) + knife_fwd(d1) + knife_fwd(d2)),
    )


# --------------------------------------------------------------------------- runners
class Bench:
    def __init__(self, a):
        self.a = a
        self.ref_python = yardstick.python()
        os.makedirs(a.work, exist_ok=True)

    def data(self, n, dim, C, seed=1, dim2=0):
        name = f'gaussian-n{n}-d{dim or C}' + (f'x{dim2}' if dim2 else '') + f'-C{C}-s{seed}.npz'
        path = os.path.join(self.a.work, name)
        if not os.path.exists(path):
            cmd = [self.ref_python, yardstick.MAKE_DATA, '--kind', 'gaussian',
                   '--n', str(n), '--n-classes', str(C), '--seed', str(seed), '--out', path + '.tmp.npz']
            if dim:
                cmd += ['--dim', str(dim)]
            if dim2:
                cmd += ['--dim2', str(dim2), '--float32']
            log(f'  data: {name}')
            r = Run(cmd)
            if not r.ok():
                raise SystemExit(f'make_data.py failed: {r.stderr[-2000:]}')
            os.replace(path + '.tmp.npz', path)
        return path

    def lsmi(self, path, threads, ed, ee):
        """One lsmi fit; runs under 2 s are repeated (3 in all, 7 under 0.5 s)
        and the fastest kept."""
        best = None
        for i in range(7):
            r = self.lsmi_once(path, threads, ed, ee)
            if r is None:
                return best
            if best is None or r['wall'] < best['wall']:
                best = r
            if r['wall'] >= 2.0 or (r['wall'] >= 0.5 and i >= 2):
                break
        return best

    def lsmi_once(self, path, threads, ed, ee):
        cmd = [self.a.lsmi, 'fit', path, '--threads', str(threads), '--seed', '1', '--json', '--quiet',
               '--epochs-discriminator', str(ed), '--epochs-entropy', str(ee)]
        log('  lsmi: ' + ' '.join(cmd[2:]))
        r = Run(cmd, timeout=self.a.timeout)
        if not r.ok():
            log(f'  lsmi failed (rc {r.rc}): {r.stderr[-1500:]}')
            return None
        j = last_json(r.stdout)
        res = dict(wall=r.wall, rss_mib=r.rss_mib, cpu=r.cpu, threads=threads,
                   load=r.load_before, load_after=r.load_after)
        if j is not None and 'seconds' in j:
            s = j['seconds']
            res.update(train=s.get('train'), disc_cpu=s.get('disc_cpu'), ent_cpu=s.get('ent_cpu'),
                       total=s.get('total'), read=s.get('read'),
                       eval=s.get('eval'), threads_used=j.get('threads', threads),
                       val=j.get('val'), d1=j.get('d1'), d2=j.get('d2'), classes=j.get('classes'))
        else:  # the text summary
            m = re.search(r'train ([\d.]+) \(cpu: discriminators ([\d.]+), entropy ([\d.]+)\), '
                          r'evaluate ([\d.]+), threads (\d+)', r.stdout)
            if m:
                res.update(train=float(m.group(1)), disc_cpu=float(m.group(2)),
                           ent_cpu=float(m.group(3)), eval=float(m.group(4)),
                           threads_used=int(m.group(5)))
        prov = (j or {}).get('provenance') or {}  # the kernels, in the JSON summary
        if prov:
            res['corename'] = prov.get('blas_core')
            res['kernels'] = prov.get('kernels')
        log(f'    {r.wall:.2f} s, {r.rss_mib:.0f} MiB, load {r.load_before[0]:.2f}')
        return res

    def ref(self, path, threads, ed, ee, repeat=1):
        """The reference; with repeat > 1 the fastest of that many runs."""
        best = None
        for _ in range(repeat):
            r = self.ref_once(path, threads, ed, ee)
            if 'skipped' in r:
                return best or r
            if best is None or r['total'] < best['total']:
                best = r
        return best

    def ref_once(self, path, threads, ed, ee):
        cmd = [self.ref_python, yardstick.TORCH_REF, '--data', path,
               '--seed', '1', '--threads', str(threads), '--epochs-disc', str(ed), '--epochs-ent', str(ee)]
        log(f'  reference: --threads {threads} --epochs {ed}/{ee}')
        r = Run(cmd, timeout=self.a.ref_timeout)
        if not r.ok():
            why = 'timed out' if r.timed_out else f'rc {r.rc}'
            log(f'  reference failed ({why}): {r.stderr[-1500:]}')
            return dict(skipped=f'failed: {why} after {r.wall:.0f} s')
        j = last_json(r.stdout) or {}
        s = j.get('seconds', {})
        log(f'    {r.wall:.2f} s wall, {s.get("total")} s own total, {r.rss_mib:.0f} MiB')
        return dict(wall=r.wall, total=s.get('total', r.wall), rss_mib=r.rss_mib, seconds=s,
                    load=r.load_before, val=j.get('val'))

    def peak(self):
        if not self.a.peak:
            return None
        r = Run([self.a.peak, str(self.a.peak_seconds)])
        j = last_json(r.stdout) if r.ok() else None
        if j:
            log(f'  sgemm peak: {j["peak_gflops"]:.1f} GFLOP/s on one thread ({j["corename"]})')
        return j


# --------------------------------------------------------------------------- service
def http(method, url, body=None, headers=None, timeout=600):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b'null')
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors='replace')


def iso_seconds(ts):
    """Seconds since the epoch of the daemon's '2026-11-27T13:55:46.123Z'."""
    import datetime
    return datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()


def service_fit(lsmi, path, threads, ed, ee, work):
    """One fit through `lsmi serve`: POST /v1/jobs to the job seen finished."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    data_dir = tempfile.mkdtemp(prefix='svc-', dir=work)
    base = f'http://127.0.0.1:{port}'
    err = open(os.path.join(data_dir, 'serve.log'), 'wb')
    rss_file = os.path.join(data_dir, 'rss')
    p = subprocess.Popen(timed([lsmi, 'serve', '--listen', f'127.0.0.1:{port}', '--data-dir', data_dir,
                                '--workers', '1'], rss_file), stdout=err, stderr=err)
    out = dict(skipped='service did not start')
    try:
        for _ in range(200):
            try:
                if http('GET', base + '/healthz', timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            return out
        with open(path, 'rb') as f:
            st, ds = http('POST', base + '/v1/datasets?name=bench', f.read(),
                          {'Content-Type': 'application/octet-stream'})
        if st not in (200, 201):
            return dict(skipped=f'upload failed: {st} {str(ds)[:200]}')
        params = dict(seed=1, threads=threads, epochs_discriminator=ed, epochs_entropy=ee)
        t0 = time.perf_counter()
        st, job = http('POST', base + '/v1/jobs', json.dumps(dict(dataset_id=ds['id'], params=params)).encode(),
                       {'Content-Type': 'application/json'})
        if st != 202:
            return dict(skipped=f'job refused: {st} {str(job)[:200]}')
        # The daemon's own timestamps (milliseconds) measure the job, queued
        # to finished; the client polls gently, since on a 2-core machine a
        # client polling every few ms takes CPU time from the fit it times.
        while True:
            st, job = http('GET', f'{base}/v1/jobs/{job["id"]}')
            if st == 200 and job.get('state') in ('succeeded', 'failed', 'cancelled'):
                break
            time.sleep(0.1)
        client_wall = time.perf_counter() - t0
        if job['state'] != 'succeeded':
            return dict(skipped=f'job {job["state"]}: {job.get("error")}')
        wall = iso_seconds(job['finished_at']) - iso_seconds(job['created_at'])
        out = dict(wall=wall, client_wall=client_wall, timings=job.get('timings'))
    finally:
        # SIGTERM to the daemon itself (GNU time, its parent, would just die).
        pid = p.pid
        try:
            with open(f'/proc/{p.pid}/task/{p.pid}/children') as f:
                pid = int(f.read().split()[0]) if GNU_TIME else p.pid
        except (OSError, ValueError, IndexError):
            pass
        try:
            os.kill(pid, signal.SIGTERM)
            _, _, ru = os.wait4(p.pid, 0)
            p.returncode = 0
            out['rss_mib'] = read_rss_mib(rss_file, ru.ru_maxrss)
        except (ChildProcessError, ProcessLookupError):
            pass
        err.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def rates(res, fl):
    """GFLOP/s per phase: per thread for training, per eval thread for evaluation."""
    out = {}
    if res.get('disc_cpu'):
        out['disc'] = fl['disc'] / res['disc_cpu'] * 1e-9
    if res.get('ent_cpu'):
        out['ent'] = fl['ent'] / res['ent_cpu'] * 1e-9
        out['ent_executed'] = fl['ent_executed'] / res['ent_cpu'] * 1e-9
    if res.get('eval'):
        t = min(res.get('threads_used') or res['threads'], 5)
        out['eval'] = fl['eval'] / (res['eval'] * t) * 1e-9
    return out


def fmt_s(x):
    if x is None:
        return '–'
    if x < 1:
        return f'{x * 1000:.0f} ms'
    return f'{x:.2f} s' if x < 10 else f'{x:.0f} s' if x < 1000 else f'{x / 60:.1f} min'


def fmt_ref(r):
    """Own total (process wall)."""
    if r is None:
        return 'not run'
    if 'skipped' in r:
        return r['skipped']
    return f'{fmt_s(r["total"])} ({fmt_s(r["wall"])})'


def fmt_lsmi(r):
    """Own total (process wall)."""
    if r is None:
        return 'failed'
    if r.get('total') is None:
        return fmt_s(r['wall'])
    return f'{fmt_s(r["total"])} ({fmt_s(r["wall"])})'



# --------------------------------------------------------------------------- main
def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--lsmi', default=os.path.join(root, 'build', 'lsmi'))
    ap.add_argument('--peak', default=os.path.join(root, 'build', 'bench', 'sgemm_peak'))
    ap.add_argument('--peak-seconds', type=float, default=0.5)
    ap.add_argument('--work', default=os.path.join(root, 'build', 'bench-work'))
    ap.add_argument('--quick', action='store_true', default=os.environ.get('LSMI_BENCH_QUICK') == '1',
                    help='small cases; the reference only where it takes under a minute, at 1 thread')
    ap.add_argument('--cases', default='', help='comma-separated case names (default: all)')
    ap.add_argument('--no-ref', action='store_true', help='lsmi only')
    ap.add_argument('--ref-threads', default='1,2')
    ap.add_argument('--reuse-ref', default='', help='results.json of an earlier run: take the reference '
                    'numbers from it (same cases and epochs) instead of running the reference again')
    ap.add_argument('--no-full', action='store_true', help='skip the full-epoch run of the big case')
    ap.add_argument('--full-epochs', default='', help='D,E: epochs of that run (default 30,30)')
    ap.add_argument('--no-scaling', action='store_true')
    ap.add_argument('--no-service', action='store_true', help='skip the fit through lsmi serve')
    ap.add_argument('--scale-epochs', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2, help='lsmi threads for the main column')
    ap.add_argument('--timeout', type=float, default=1800, help='per lsmi run, seconds')
    ap.add_argument('--ref-timeout', type=float, default=1200, help='per reference run, seconds')
    ap.add_argument('--data-only', action='store_true', help='generate the data files and stop')
    ap.add_argument('--json-out', default=None)
    ap.add_argument('--md-out', default=None)
    a = ap.parse_args()
    a.json_out = a.json_out or os.path.join(a.work, 'results.json')
    a.md_out = a.md_out or os.path.join(a.work, 'results.md')
    if not os.path.exists(a.lsmi) and not a.data_only:
        raise SystemExit(f'{a.lsmi}: not built (make)')
    # numpy for the data; torch too unless the reference is not run.
    yardstick.require(yardstick.python(), ('numpy',) if a.no_ref or a.data_only else ('numpy', 'torch'),
                      'bench.py')
    b = Bench(a)

    cases = CASES
    if a.cases:
        want = set(a.cases.split(','))
        cases = [c for c in CASES if c['name'] in want]
    elif a.quick:
        cases = [c for c in CASES if c['n'] <= 20000]
    ref_threads = [int(t) for t in a.ref_threads.split(',') if t]
    reuse = {}
    if a.reuse_ref:
        with open(a.reuse_ref) as f:
            old = json.load(f)
        for c in old['cases']:
            for t, r in c['ref'].items():
                if r and 'total' in r:
                    reuse[(c['name'], tuple(c['epochs']), int(t))] = dict(r, reused_from=old['machine'])
    if a.data_only:
        for c in cases:
            b.data(c['n'], c['dim'], c['C'], dim2=c.get('dim2', 0))
        for _, n, dim, C in ([] if a.no_scaling else SCALING):
            b.data(n, dim, C)
        return

    machine = dict(load_start=loadavg(), nproc=os.cpu_count(), started=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))
    log(f'load average at start: {machine["load_start"]}')
    peak = b.peak()
    peak_g = peak['peak_gflops'] if peak else None
    results = dict(machine=machine, peak=peak, cases=[], scaling=[])

    for c in cases:
        log(f'case {c["name"]}')
        path = b.data(c['n'], c['dim'], c['C'], dim2=c.get('dim2', 0))
        n_tr, n_va = int(0.8 * c['n']), int(0.2 * c['n'])
        d = c['dim'] or c['C']
        d2 = c.get('dim2') or d
        ed, ee = c['epochs']
        row = dict(name=c['name'], n=c['n'], d=d, d2=d2, C=c['C'], epochs=[ed, ee])
        row['lsmi'] = b.lsmi(path, a.threads, ed, ee)
        row['lsmi_1t'] = (row['lsmi'] if a.threads == 1 or c.get('no_1t')
                          else b.lsmi(path, 1, ed, ee))
        fl = flops(n_tr, n_va, d, d2, c['C'], ed, ee)
        row['flops'] = fl
        row['rates'] = rates(row['lsmi'], fl) if row['lsmi'] else {}
        row['rates_1t'] = rates(row['lsmi_1t'], fl) if row['lsmi_1t'] else {}
        row['data_mib'] = (n_tr + n_va) * ((d + d2) * 4 + 4) / 2 ** 20
        row['ref'] = {}
        for t in ref_threads:
            if (c['name'], (ed, ee), t) in reuse:
                row['ref'][t] = reuse[(c['name'], (ed, ee), t)]
                log(f'  reference --threads {t}: {row["ref"][t]["total"]:.2f} s, from {a.reuse_ref}')
            elif a.no_ref:
                row['ref'][t] = dict(skipped='not run (--no-ref)')
            elif t in c.get('ref_skip', {}):
                row['ref'][t] = dict(skipped=c['ref_skip'][t])
            elif a.quick and (c['ref_expect'] > 60 or t != 1):
                row['ref'][t] = dict(skipped='skipped (quick mode)')
            else:
                row['ref'][t] = b.ref(path, t, ed, ee, repeat=c.get('ref_repeat', 1))
        if 'full_epochs' in c and not a.no_full and not a.quick:
            fed, fee = c['full_epochs']
            if a.full_epochs:
                fed, fee = (int(x) for x in a.full_epochs.split(','))
            row['full'] = b.lsmi(path, a.threads, fed, fee)
            row['full_epochs'] = [fed, fee]
            if row['full']:
                row['full_rates'] = rates(row['full'], flops(n_tr, n_va, d, d2, c['C'], fed, fee))
        if c.get('service') and not a.no_service:
            log(f'  service: the same fit through POST /v1/jobs')
            for _ in range(3):  # like lsmi fit: short runs three times, the fastest kept
                sv = service_fit(a.lsmi, path, a.threads, ed, ee, a.work)
                if 'wall' not in sv or 'wall' not in row.get('service', {}) or sv['wall'] < row['service']['wall']:
                    row['service'] = sv if 'wall' in sv or 'service' not in row else row['service']
                if 'wall' not in sv or sv['wall'] >= 2.0:
                    break
            if 'wall' in row['service']:
                log(f'    {row["service"]["wall"]:.2f} s')
        results['cases'].append(row)

    if not a.no_scaling:
        e = 2 if a.quick else a.scale_epochs
        log(f'scaling, {e}+{e} epochs, lsmi --threads {a.threads}')
        for axis, n, dim, C in SCALING:
            if a.quick and n > 40000:
                continue
            path = b.data(n, dim, C)
            r = b.lsmi(path, a.threads, e, e)
            if r:
                fl = flops(int(0.8 * n), int(0.2 * n), dim, dim, C, e, e)
                results['scaling'].append(dict(axis=axis, n=n, d=dim, C=C, epochs=e, lsmi=r, flops=fl,
                                               rates=rates(r, fl)))
    machine['load_end'] = loadavg()
    machine['finished'] = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())

    md = markdown(results, peak_g, a)
    with open(a.json_out, 'w') as f:
        json.dump(results, f, indent=1)
    with open(a.md_out, 'w') as f:
        f.write(md)
    print(md)


def pct(x, peak):
    if x is None or not peak:
        return '–'
    return f'{x:.1f} ({100 * x / peak:.0f}%)'


def ratio_of(c, key='total'):
    """Faster reference over lsmi (2 threads): key 'total' compares the two
    own totals, 'wall' the two process wall times."""
    l2 = c.get('lsmi')
    refs = [r[key] for r in c['ref'].values() if r and key in r]
    return min(refs) / l2[key] if refs and l2 and l2.get(key) else None


def fmt_ratios(c):
    r, w = ratio_of(c), ratio_of(c, 'wall')
    if r is None:
        return '–'
    return f'{r:.0f}×' + (f' ({w:.0f}×)' if w is not None else '')


def checks(res, peak):
    out = []
    by = {c['name']: c for c in res['cases']}
    for name, want in (('demo', 100), ('n20k-d128-C10', 10)):
        c = by.get(name)
        r = c and ratio_of(c)
        if r is not None:
            w = ratio_of(c, 'wall')
            verdict = lambda x: 'met' if x is not None and x >= want else 'NOT met'
            out.append(f'{name}: {r:.0f}× faster than the faster reference run on own totals, '
                       f'{w:.0f}× on process walls (target ≥ {want}×): {verdict(r)} on own totals, '
                       f'{verdict(w)} on process walls')
    c = by.get('n100k-d256-C10')
    if c and c.get('full'):
        f = c['full']
        ok = f['wall'] < 600 and f['rss_mib'] < 2048
        out.append(f'n100k-d256-C10 at {c["full_epochs"][0]}+{c["full_epochs"][1]} epochs: {fmt_s(f["wall"])}, '
                   f'{f["rss_mib"]:.0f} MiB (target < 10 min, < 2 GB): {"met" if ok else "NOT met"}')
    c = by.get('n20k-d768x512-C31')
    r = c and ratio_of(c)
    if r is not None:
        w = ratio_of(c, 'wall')
        out.append(f'n20k-d768x512-C31: {r:.0f}× faster than the faster reference run on own totals, '
                   f'{w:.0f}× on process walls (target ≥ 30×): {"met" if r >= 30 else "NOT met"} on own totals, '
                   f'{"met" if w >= 30 else "NOT met"} on process walls; the fit\'s roofline '
                   f'(doc/roofline.md) is about 2.0 s against {fmt_s(c["lsmi"]["total"])} '
                   f'({c["lsmi"]["total"] / 2.0:.1f}×, target ≤ 1.5×)')
    c = by.get('n100k-d768x512-C31')
    if c and c.get('full'):
        f = c['full']
        ok = f['wall'] <= 240 and f['rss_mib'] <= 2048
        out.append(f'n100k-d768x512-C31 at {c["full_epochs"][0]}+{c["full_epochs"][1]} epochs: {fmt_s(f["wall"])}, '
                   f'{f["rss_mib"]:.0f} MiB (target ≤ 4 min, ≤ 2 GB): {"met" if ok else "NOT met"}')
    c = by.get('n20k-d128-C10')
    if c and peak and c.get('rates', {}).get('ent'):
        e = c['rates']['ent']
        x = c['rates'].get('ent_executed', 0.0)
        out.append(f'KNIFE at d=128: {e:.1f} GFLOP/s per thread dense-equivalent = {100 * e / peak:.0f}% of the '
                   f'sgemm peak (target ≥ 40%): {"met" if e >= 0.4 * peak else "NOT met"}; on the flops lsmi '
                   f'executes {x:.1f} GFLOP/s = {100 * x / peak:.0f}%')
    for c in res['cases']:
        sv, l2 = c.get('service'), c.get('lsmi')
        if sv and l2 and 'wall' in sv:
            x = sv['wall'] / l2['wall'] - 1
            out.append(f'{c["name"]} through `POST /v1/jobs` (job queued to finished, by the daemon clock): {fmt_s(sv["wall"])} '
                       f'against {fmt_s(l2["wall"])} for `lsmi fit`, {100 * x:+.0f}% (target ≤ +10%): '
                       f'{"met" if x <= 0.10 else "NOT met"}; daemon peak RSS {sv.get("rss_mib", 0):.0f} MiB')
        elif sv:
            out.append(f'{c["name"]} through the service: {sv.get("skipped")}')
    over = [c['name'] for c in res['cases'] if c.get('lsmi') and c['lsmi']['rss_mib'] > 4 * c['data_mib'] + 100]
    out.append('peak RSS within 4 × float32 data + 100 MB: ' + ('all cases' if not over else 'NOT in ' + ', '.join(over)))
    return out


def markdown(res, peak, a):
    L = []
    m = res['machine']
    pk = res.get('peak') or {}
    line = f'Machine: {m["nproc"]} cores'
    if peak:
        ks = sorted({c['lsmi'].get('kernels') for c in res['cases'] if c.get('lsmi') and c['lsmi'].get('kernels')})
        line += (f'; lsmi kernels `{", ".join(ks) or "?"}`; OpenBLAS kernels `{pk.get("corename", "?")}`; '
                 f'single-thread sgemm peak {peak:.1f} GFLOP/s')
    line += (f'; load average {m["load_start"][0]:.2f} at start, {m.get("load_end", [0])[0]:.2f} at end '
             f'({m["started"]} – {m.get("finished", "")}).')
    L.append(line)
    L.append('')
    L.append('| case | epochs | lsmi 2 thr | lsmi 1 thr | lsmi peak RSS | reference 1 thr | reference 2 thr '
             '| faster ref / lsmi: own totals (walls) | GFLOP/s per thread: discriminators / KNIFE / evaluation (% of peak) |')
    L.append('|---|---|---|---|---|---|---|---|---|')
    for c in res['cases']:
        l2, l1 = c.get('lsmi'), c.get('lsmi_1t')
        ratio = fmt_ratios(c)
        rt = c.get('rates', {})
        rates_s = ' / '.join(pct(rt.get(k), peak) for k in ('disc', 'ent', 'eval'))
        dims = f'd1=d2={c["d"]}' if c.get('d2', c['d']) == c['d'] else f'd1={c["d"]}, d2={c["d2"]}'
        cells = [f'{c["name"]} (n={c["n"]}, {dims}, C={c["C"]})', f'{c["epochs"][0]}+{c["epochs"][1]}',
                 fmt_lsmi(l2), fmt_lsmi(l1),
                 f'{l2["rss_mib"]:.0f} MiB (bound {4 * c["data_mib"] + 100:.0f})' if l2 else '–',
                 fmt_ref(c['ref'].get(1)), fmt_ref(c['ref'].get(2)), ratio, rates_s]
        L.append('| ' + ' | '.join(cells) + ' |')
        if c.get('full'):
            f = c['full']
            fr = c.get('full_rates', {})
            L.append(f'| {c["name"]}, full epochs | {c["full_epochs"][0]}+{c["full_epochs"][1]} '
                     f'| {fmt_s(f["wall"])} | – | {f["rss_mib"]:.0f} MiB | not run | not run | – '
                     f'| {" / ".join(pct(fr.get(k), peak) for k in ("disc", "ent", "eval"))} |')
    L.append('')
    L.append('Times are own totals, with whole-process wall times in brackets. The own total is reading the '
             'data, training and evaluation (`seconds.total` of the reference and of lsmi); the process wall adds '
             'start-up (Python and torch; the dynamic loader and OpenBLAS) and exit. The ratio column compares '
             'both the same way. GFLOP/s count matrix-product flops only '
             '(formulas in bench/bench.py) over lsmi\'s thread CPU seconds per phase, 2-thread run; '
             'KNIFE products are counted dense, as the reference computes them, while lsmi\'s triangular '
             'products do about 2/3 of that work in training and 1/2 in evaluation, so those rates are '
             'dense-equivalent and can pass the sgemm peak.')
    L.append('')
    L.append('Targets (issues 6 and 18):')
    L.append('')
    for line in checks(res, peak):
        L.append(f'- {line}')
    if res['scaling']:
        L.append('')
        e = res['scaling'][0]['epochs']
        L.append(f'Scaling (lsmi --threads {a.threads}, {e}+{e} epochs; CPU seconds per epoch summed over the '
                 f'models of each family):')
        L.append('')
        L.append('| grows | n | d1=d2 | C | wall | disc CPU s/epoch | KNIFE CPU s/epoch | evaluation | '
                 'peak RSS | GFLOP/s disc / KNIFE / eval |')
        L.append('|---|---|---|---|---|---|---|---|---|---|')
        for s in res['scaling']:
            r, rt = s['lsmi'], s['rates']
            L.append(f'| {s["axis"]} | {s["n"]} | {s["d"]} | {s["C"]} | {fmt_s(r["wall"])} '
                     f'| {r["disc_cpu"] / s["epochs"]:.3f} | {r["ent_cpu"] / s["epochs"]:.3f} '
                     f'| {fmt_s(r["eval"])} | {r["rss_mib"]:.0f} MiB '
                     f'| {rt.get("disc", 0):.1f} / {rt.get("ent", 0):.1f} / {rt.get("eval", 0):.1f} |')
    L.append('')
    L.append('Reproduce: `make bench` (`make bench-quick` for the small cases).')
    return '\n'.join(L) + '\n'


if __name__ == '__main__':
    main()
