#!/usr/bin/env python3
"""Agreement of lsmi with the PyTorch reference on the gaussian demo.

For each seed S (default 1..5) this makes the demo file with
bench/make_data.py (--kind gaussian --n 2000 --seed S), runs the PyTorch
reference bench/torch_ref.py and `lsmi fit` on it with the same seed, and a
second reference run with another seed (S + 100) to measure the reference's
own seed-to-seed spread. It prints, side by side:

  - the val means R, U1, U2, S of both, per seed and averaged over the seeds,
    with the difference of the averages (goal: within 0.03 nats);
  - the Pearson correlation of per-sample val r and s between lsmi and the
    reference, next to the correlation between two reference seeds (goal:
    lsmi agrees with the reference at least as well as the reference agrees
    with itself).

Needs Debian's python3-torch and python3-numpy: the reference and the data
maker run under $LSMI_REF_PYTHON, else /usr/bin/python3 (bench/yardstick.py),
and without them this says what to install and exits 1. It is not part of
`make test`; run it with `make accuracy`. Exit status 0 when both goals are
met.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile

import yardstick

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = yardstick.python()


def run(cmd):
    """Runs cmd and returns its stdout; when it fails, exits after printing
    the end of its stderr (the failure, not a traceback of this script)."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        what = os.path.basename(cmd[1] if cmd[0] == PY else cmd[0])  # the script, or lsmi
        sys.exit(f'compare_reference.py: {what} failed (exit {res.returncode}):\n{res.stderr[-2000:]}')
    return res.stdout


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float('nan')


def read_ref_rows(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in ('r', 'u1', 'u2', 's')}


def read_lsmi_rows(path):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r['split'] == 'val']
    return {k: [float(r[k]) for r in rows] for k in ('r', 'u1', 'u2', 's')}


def run_ref(data, seed, threads, out):
    return json.loads(run([PY, yardstick.TORCH_REF, '--data', data, '--seed', str(seed),
                           '--threads', str(threads), '--out', out]))


def run_lsmi(binary, data, seed, threads, out):
    cmd = [binary, 'fit', data, '--seed', str(seed), '--threads', str(threads),
           '--out', out, '--json', '--quiet']
    return json.loads(run(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seeds', default='1,2,3,4,5')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--bin', default=os.path.join(os.environ.get('LSMI_BUILD', os.path.join(ROOT, 'build')), 'lsmi'))
    ap.add_argument('--tolerance', type=float, default=0.03)
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f'compare_reference.py: {a.bin}: not built (make)')
    yardstick.require(PY, ('numpy', 'torch'), 'compare_reference.py')
    seeds = [int(s) for s in a.seeds.split(',')]
    keys = ('R', 'U1', 'U2', 'S')
    tot = {'ref': {k: 0.0 for k in keys}, 'lsmi': {k: 0.0 for k in keys}}
    corr = {'lsmi_r': [], 'lsmi_s': [], 'ref_r': [], 'ref_s': []}
    print(f"{'seed':>4} {'who':>5} " + ' '.join(f'{k:>7}' for k in keys) +
          f" {'corr r':>7} {'corr s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            data = os.path.join(tmp, f'demo{seed}.npz')
            run([PY, yardstick.MAKE_DATA, '--kind', 'gaussian', '--n', '2000', '--seed', str(seed),
                 '--out', data])
            ref = run_ref(data, seed, a.threads, os.path.join(tmp, 'ref.csv'))
            ref2 = run_ref(data, seed + 100, a.threads, os.path.join(tmp, 'ref2.csv'))
            ours = run_lsmi(a.bin, data, seed, a.threads, os.path.join(tmp, 'lsmi.csv'))
            rr = read_ref_rows(os.path.join(tmp, 'ref.csv'))
            rr2 = read_ref_rows(os.path.join(tmp, 'ref2.csv'))
            lr = read_lsmi_rows(os.path.join(tmp, 'lsmi.csv'))
            c_lr, c_ls = pearson(lr['r'], rr['r']), pearson(lr['s'], rr['s'])
            c_rr, c_rs = pearson(rr2['r'], rr['r']), pearson(rr2['s'], rr['s'])
            corr['lsmi_r'].append(c_lr)
            corr['lsmi_s'].append(c_ls)
            corr['ref_r'].append(c_rr)
            corr['ref_s'].append(c_rs)
            for k in keys:
                tot['ref'][k] += ref['val'][k] / len(seeds)
                tot['lsmi'][k] += ours['val'][k] / len(seeds)
            print(f"{seed:>4} {'ref':>5} " + ' '.join(f"{ref['val'][k]:7.4f}" for k in keys) +
                  f" {c_rr:7.3f} {c_rs:7.3f}   (reference seed {seed + 100} vs {seed})")
            print(f"{seed:>4} {'lsmi':>5} " + ' '.join(f"{ours['val'][k]:7.4f}" for k in keys) +
                  f" {c_lr:7.3f} {c_ls:7.3f}   (lsmi vs reference, seed {seed})")
            sys.stdout.flush()
    print()
    print(f"{'mean':>4} {'ref':>5} " + ' '.join(f"{tot['ref'][k]:7.4f}" for k in keys))
    print(f"{'mean':>4} {'lsmi':>5} " + ' '.join(f"{tot['lsmi'][k]:7.4f}" for k in keys))
    diff = {k: tot['lsmi'][k] - tot['ref'][k] for k in keys}
    print(f"{'diff':>4} {'':>5} " + ' '.join(f'{diff[k]:+7.4f}' for k in keys))
    m = {k: sum(v) / len(v) for k, v in corr.items()}
    print(f"per-sample correlation, mean over seeds: lsmi~ref r {m['lsmi_r']:.3f} s {m['lsmi_s']:.3f}; "
          f"ref~ref(other seed) r {m['ref_r']:.3f} s {m['ref_s']:.3f}")
    ok_means = all(abs(d) <= a.tolerance for d in diff.values())
    # "At least as well": allow the noise of a 5-seed mean (0.02).
    ok_corr = m['lsmi_r'] >= m['ref_r'] - 0.02 and m['lsmi_s'] >= m['ref_s'] - 0.02
    print(f"means within {a.tolerance}: {'yes' if ok_means else 'NO'}; "
          f"correlation at least the reference's own: {'yes' if ok_corr else 'NO'}")
    return 0 if ok_means and ok_corr else 1


if __name__ == '__main__':
    sys.exit(main())
