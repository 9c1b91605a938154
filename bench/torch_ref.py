#!/usr/bin/env python3
"""bench/torch_ref.py — the project's PyTorch yardstick for the LSMI estimator.

An implementation of DESIGN.md section 2 in plain PyTorch, with the published
recipe's hyper-parameters, written the way a researcher would run LSMI today.
`make accuracy` (bench/compare_reference.py) compares lsmi's numbers with it;
`make bench` (bench/bench.py) times lsmi against it.

The model functions are importable and work in any floating dtype:
knife_logpdf / Knife, make_mlp, log_prob_at, cross_entropy, make_optimizer,
decompose and adjust. tests/fixtures/make_fixtures.py calls these very
functions in float64 (gradients by autograd) to write the fixtures that the C
unit tests compare lsmi's kernels with. So the C core and this yardstick are
checked against each other through tests/fixtures/*.json: a change to a
formula here changes the fixtures, and the unit tests then say whether lsmi
still agrees.

The estimator, per DESIGN.md section 2 (natural logs, so nats):
  discriminators  f1(x1), f2(x2), f12([x1, x2]), each
                  Linear(in,H) ReLU Linear(H,H) ReLU Linear(H,C), H = 64,
                  PyTorch's default init; trained jointly on the sum of the
                  three mean cross-entropies with one Adam(1e-3, 0.9/0.999,
                  1e-8) and StepLR(15, 0.1) stepped per epoch; 30 epochs,
                  batch 32, the rows reshuffled every epoch.
  pointwise MI    i(x;y) = log softmax(f(x))_y - log p(y); the prior is
                  uniform (-log C, the published script) or empirical (the
                  class frequencies of train).
  KNIFE           one kernel per modality, K = 5 components:
                    s_k = exp(tanh(logvar_k)),  z_k = (x - means_k) * s_k,
                    z_k += strictly_lower(tri_k) z_k,
                    log p(x) = -d/2 log 2pi + logsumexp_k(-|z_k|^2/2
                               + sum_j log(|s_kj| + 1e-8) + log_softmax(weigh)_k),
                  means, logvar, tri ~ N(0,1), weigh = 1; trained on the sum
                  of both kernels' mean -log p with Adam(1e-3) and
                  StepLR(20, 0.1), 30 epochs, batch 32. The gradients are
                  zeroed every step; --no-zero-grad reproduces the published
                  script, which never zeroes them (they accumulate).
  entropy         h(x) = -log p(x)
  decomposition   r = min(h1, h2) - min(h1 - i1, h2 - i2),
                  u1 = i1 - r, u2 = i2 - r, s = i12 - r - u1 - u2
  adjustment      per split, on that split's means: a = -min(R, S) if R < 0
                  or S < 0, else min(U1, U2) if U1 < 0 or U2 < 0, else 0;
                  r += a, s += a, u1 -= a, u2 -= a.

Training runs in float32, as the published script does; the decomposition
and the means are taken in float64. The models are created in the order f1,
f2, f12, kernel 1, kernel 2 from torch.manual_seed(--seed); one shuffle
stream (a torch.Generator seeded with --seed) serves both trainings, as the
published script's one DataLoader does. Its streams are PyTorch's, not
lsmi's, so a seed gives other numbers than `lsmi fit` with that seed:
compare means over seeds.

Usage (Debian's python3-torch and python3-numpy; run it with /usr/bin/python3
where the `python3` on PATH has no torch):
    /usr/bin/python3 bench/make_data.py --n 2000 --seed 1 --out demo.npz
    /usr/bin/python3 bench/torch_ref.py --data demo.npz --seed 1 --threads 2 \\
        --out val_rows.csv
It prints one JSON object: the train and val means (R, U1, U2, S and I1, I2,
I12, H1, H2), the shift of each split and `seconds` per phase (data,
disc_train, ent_train, eval_train, eval_val, eval, total: everything after
Python and torch have started). --out gets the per-sample val rows after the
adjustment, with the columns of `lsmi fit` less `split`.
"""
import argparse
import json
import math
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ModuleNotFoundError as e:
    sys.exit(f'torch_ref.py: {e.name} is missing for {sys.executable}: '
             'apt-get install python3-torch python3-numpy, and run it with /usr/bin/python3')

# The published recipe (DESIGN.md section 2).
HIDDEN = 64
COMPONENTS = 5
BATCH = 32
EPOCHS_DISC, LR_DISC, STEP_DISC = 30, 1e-3, 15
EPOCHS_ENT, LR_ENT, STEP_ENT = 30, 1e-3, 20
GAMMA = 0.1


# ---------------------------------------------------------------- the models
def make_mlp(d_in, hidden, classes):
    """Linear(d_in,hidden)-ReLU-Linear(hidden,hidden)-ReLU-Linear(hidden,classes)
    with PyTorch's default initialisation: every weight and bias
    ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Float32; .double() for float64."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def log_prob_at(logits, y):
    """log softmax(logits)_y per row: log p(y|x) of the discriminator."""
    return torch.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0]


def cross_entropy(logits, y):
    """Mean over the rows of -log p(y|x): a discriminator's loss (PyTorch's
    fused cross-entropy, what a training script calls)."""
    return F.cross_entropy(logits, y)


def knife_logpdf(x, means, logvar, tri, weigh):
    """log p(x) per row of x (n, d) under a KNIFE kernel with K components:
    means, logvar (K, d), tri (K, d, d) of which only the strictly lower
    triangle enters, weigh (K,). Works in the dtype of its arguments."""
    d = x.shape[1]
    s = torch.exp(torch.tanh(logvar))                         # (K, d)
    z = (x[None, :, :] - means[:, None, :]) * s[:, None, :]   # (K, n, d)
    lower = torch.tril(tri, diagonal=-1)                      # (K, d, d)
    # z_k += L_k z_k for every row, on the z before the update: one
    # (n, d) x (d, d) product a component. einsum, not bmm on a transposed
    # view, which torch 1.13 runs 2-4x slower at d = 128.
    z = z + torch.einsum('kij,knj->kni', lower, z)
    log_det = torch.log(s.abs() + 1e-8).sum(dim=1)            # (K,)
    log_w = torch.log_softmax(weigh, dim=0)                   # (K,)
    comp = -0.5 * (z * z).sum(dim=2) + (log_det + log_w)[:, None]  # (K, n)
    return torch.logsumexp(comp, dim=0) - 0.5 * d * math.log(2.0 * math.pi)


class Knife(nn.Module):
    """A KNIFE marginal kernel with the published initialisation: means,
    logvar and tri ~ N(0, 1) (drawn in that order), weigh = 1."""

    def __init__(self, d, components=COMPONENTS):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, d))
        self.logvar = nn.Parameter(torch.randn(components, d))
        self.tri = nn.Parameter(torch.randn(components, d, d))
        self.weigh = nn.Parameter(torch.ones(components))

    def logpdf(self, x):
        return knife_logpdf(x, self.means, self.logvar, self.tri, self.weigh)


def make_optimizer(params, lr, step, gamma=GAMMA):
    """Adam(lr, betas 0.9/0.999, eps 1e-8) and its StepLR(step, gamma); the
    caller steps the scheduler (once an epoch in the estimator)."""
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=gamma)


def decompose(i1, i2, i12, h1, h2):
    """The pointwise decomposition: (r, u1, u2, s) per sample, before the
    adjustment."""
    r = torch.minimum(h1, h2) - torch.minimum(h1 - i1, h2 - i2)
    u1 = i1 - r
    u2 = i2 - r
    s = i12 - r - u1 - u2
    return r, u1, u2, s


def adjust(r, u1, u2, s):
    """The mean adjustment of one split: returns (a, r + a, u1 - a, u2 - a,
    s + a), a chosen from the split's means. r + u1, r + u2 and
    r + u1 + u2 + s are kept."""
    R, U1, U2, S = (float(v.mean()) for v in (r, u1, u2, s))
    if R < 0 or S < 0:
        a = -min(R, S)
    elif U1 < 0 or U2 < 0:
        a = min(U1, U2)
    else:
        a = 0.0
    return a, r + a, u1 - a, u2 - a, s + a


# ---------------------------------------------------------------- training
def batches(n, batch, gen):
    """One epoch's batches of row indices, in a fresh random order."""
    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch] for i in range(0, n, batch)]


def train_discriminators(mlps, x1, x2, y, a, gen):
    x12 = torch.cat([x1, x2], dim=1)
    opt, sched = make_optimizer([p for m in mlps for p in m.parameters()], LR_DISC, STEP_DISC)
    for _ in range(a.epochs_disc):
        for idx in batches(len(y), a.batch, gen):
            yb = y[idx]
            loss = (cross_entropy(mlps[0](x1[idx]), yb) + cross_entropy(mlps[1](x2[idx]), yb)
                    + cross_entropy(mlps[2](x12[idx]), yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()


def train_kernels(knives, x1, x2, a, gen):
    opt, sched = make_optimizer([p for k in knives for p in k.parameters()], LR_ENT, STEP_ENT)
    for _ in range(a.epochs_ent):
        for idx in batches(len(x1), a.batch, gen):
            loss = -knives[0].logpdf(x1[idx]).mean() - knives[1].logpdf(x2[idx]).mean()
            if not a.no_zero_grad:
                opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(mlps, knives, x1, x2, y, log_prior, adjust_means, chunk=1024):
    """Every per-sample column of one split, float64, after the adjustment
    (when adjust_means), and the shift that was applied."""
    x12 = torch.cat([x1, x2], dim=1)
    cols = {k: [] for k in ('i1', 'i2', 'i12', 'h1', 'h2')}
    for lo in range(0, len(y), chunk):
        sl = slice(lo, lo + chunk)
        yb = y[sl]
        for name, m, x in (('i1', mlps[0], x1), ('i2', mlps[1], x2), ('i12', mlps[2], x12)):
            cols[name].append(log_prob_at(m(x[sl]), yb).double() - log_prior[yb])
        cols['h1'].append(-knives[0].logpdf(x1[sl]).double())
        cols['h2'].append(-knives[1].logpdf(x2[sl]).double())
    c = {k: torch.cat(v) for k, v in cols.items()}
    r, u1, u2, s = decompose(c['i1'], c['i2'], c['i12'], c['h1'], c['h2'])
    shift = 0.0
    if adjust_means:
        shift, r, u1, u2, s = adjust(r, u1, u2, s)
    c.update(r=r, u1=u1, u2=u2, s=s)
    return c, shift


def means(c):
    return {k.upper(): float(c[k].mean()) for k in ('r', 'u1', 'u2', 's', 'i1', 'i2', 'i12', 'h1', 'h2')}


def write_rows(path, c, y):
    """Per-sample rows, the columns of `lsmi fit` less split."""
    keys = ('r', 'u1', 'u2', 's', 'i1', 'i2', 'i12', 'h1', 'h2')
    with open(path, 'w') as f:
        f.write('index,y,' + ','.join(keys) + '\n')
        cols = [c[k].tolist() for k in keys]
        for i, yi in enumerate(y.tolist()):
            f.write(f'{i},{yi},' + ','.join(f'{col[i]:.9g}' for col in cols) + '\n')


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', required=True, help='.npz with train_x1, train_x2, train_y, val_x1, val_x2, val_y')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1, help='torch.set_num_threads')
    ap.add_argument('--out', help='CSV of the per-sample val rows')
    ap.add_argument('--epochs-disc', type=int, default=EPOCHS_DISC)
    ap.add_argument('--epochs-ent', type=int, default=EPOCHS_ENT)
    ap.add_argument('--batch', type=int, default=BATCH)
    ap.add_argument('--hidden', type=int, default=HIDDEN)
    ap.add_argument('--components', type=int, default=COMPONENTS)
    ap.add_argument('--prior', choices=('uniform', 'empirical'), default='uniform')
    ap.add_argument('--no-adjust', action='store_true', help='report the decomposition without the mean adjustment')
    ap.add_argument('--no-zero-grad', action='store_true',
                    help="never zero the KNIFE gradients, as the published script (they accumulate)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    seconds = {}
    t0 = t_start = time.perf_counter()

    def phase(name):
        nonlocal t0
        t1 = time.perf_counter()
        seconds[name] = round(t1 - t0, 4)
        t0 = t1

    with np.load(a.data) as z:
        def feat(k):
            return torch.from_numpy(np.ascontiguousarray(z[k], dtype=np.float32))

        def labels(k):
            return torch.from_numpy(np.ascontiguousarray(z[k]).reshape(-1).astype(np.int64))
        x1, x2, y = feat('train_x1'), feat('train_x2'), labels('train_y')
        v1, v2, vy = feat('val_x1'), feat('val_x2'), labels('val_y')
    classes = int(max(y.max(), vy.max())) + 1
    d1, d2 = x1.shape[1], x2.shape[1]
    phase('data')

    torch.manual_seed(a.seed)
    gen = torch.Generator()
    gen.manual_seed(a.seed)
    mlps = [make_mlp(d1, a.hidden, classes), make_mlp(d2, a.hidden, classes),
            make_mlp(d1 + d2, a.hidden, classes)]
    knives = [Knife(d1, a.components), Knife(d2, a.components)]
    train_discriminators(mlps, x1, x2, y, a, gen)
    phase('disc_train')
    train_kernels(knives, x1, x2, a, gen)
    phase('ent_train')

    if a.prior == 'uniform':
        log_prior = torch.full((classes,), -math.log(classes), dtype=torch.float64)
    else:
        log_prior = torch.log(torch.bincount(y, minlength=classes).double() / len(y))
    for m in mlps:
        m.eval()
    train, train_shift = evaluate(mlps, knives, x1, x2, y, log_prior, not a.no_adjust)
    phase('eval_train')
    val, val_shift = evaluate(mlps, knives, v1, v2, vy, log_prior, not a.no_adjust)
    phase('eval_val')
    seconds['eval'] = round(seconds['eval_train'] + seconds['eval_val'], 4)
    seconds['total'] = round(time.perf_counter() - t_start, 4)

    if a.out:
        write_rows(a.out, val, vy)
    print(json.dumps(dict(
        data=a.data, seed=a.seed, threads=torch.get_num_threads(), n_train=len(y), n_val=len(vy),
        d1=d1, d2=d2, classes=classes, epochs_disc=a.epochs_disc, epochs_ent=a.epochs_ent,
        batch=a.batch, hidden=a.hidden, components=a.components, prior=a.prior,
        adjust=not a.no_adjust, zero_grad=not a.no_zero_grad,
        train=means(train), val=means(val), shift=dict(train=train_shift, val=val_shift),
        seconds=seconds)))


if __name__ == '__main__':
    main()
