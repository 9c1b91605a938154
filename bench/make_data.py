#!/usr/bin/env python3
"""bench/make_data.py — the gaussian datasets of `make bench` and
`make accuracy`, as .npz files.

The gaussian demo of DESIGN.md section 6, after the published generator: per
split y ~ U{0..C-1}, u, v ~ N(0, sigma^2 I_C),
    x1 = onehot(y) + u,    x2 = onehot(y) + rho u + sqrt(1 - rho^2) v,
rho 0.5, sigma 0.5, C 2 and n 2000 by default, int(0.8 n) train rows then
int(0.2 n) val rows. The draws come from numpy's RandomState(--seed) in the
published generator's order (train then val; per split randint for y, randn
for u, randn for v), so the demo file of seed S holds the numbers the
published demo makes after np.random.seed(S).

--dim D (>= C) carries the class signal into D dimensions (--dim2 gives x2
another width, as image and text features have), the larger cases of
bench/bench.py: each modality is multiplied by its own D x C matrix with
orthonormal columns, x_D = x E^T, so distances, densities up to a constant
and every mutual information stay those of the C-dimensional data, which
lie on a C-dimensional subspace of R^D. E1 and E2 come from
RandomState(--embed-seed) (the same for every --seed), QR of a Gaussian
matrix with the signs fixed.

The file has the keys train_x1, train_x2, train_y, val_x1, val_x2, val_y
(features float64, labels int64). Needs numpy (Debian: python3-numpy).

    /usr/bin/python3 bench/make_data.py --n 2000 --seed 1 --out demo.npz
    /usr/bin/python3 bench/make_data.py --n 20000 --n-classes 10 --dim 128 \\
        --seed 1 --out big.npz
"""
import argparse
import sys

try:
    import numpy as np
except ModuleNotFoundError:
    sys.exit(f'make_data.py: numpy is missing for {sys.executable}: '
             'apt-get install python3-numpy, and run it with /usr/bin/python3')


def gaussian_split(rs, n, classes, rho, sigma):
    """One split of the demo, in the published generator's draw order."""
    y = rs.randint(0, classes, size=n)
    u = rs.randn(n, classes) * sigma
    v = rs.randn(n, classes) * sigma
    onehot = np.eye(classes)[y]
    return onehot + u, onehot + rho * u + np.sqrt(1.0 - rho * rho) * v, y.astype(np.int64)


def orthonormal_columns(rs, rows, cols):
    """A rows x cols matrix with orthonormal columns (rows >= cols)."""
    q, r = np.linalg.qr(rs.randn(rows, cols))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--kind', default='gaussian', choices=('gaussian',))
    ap.add_argument('--n', type=int, default=2000, help='rows in all, 80%% train and 20%% val')
    ap.add_argument('--n-classes', type=int, default=2)
    ap.add_argument('--dim', type=int, default=0, help='carry the signal into this many dimensions (0: C)')
    ap.add_argument('--dim2', type=int, default=0, help='x2 into this many instead (0: --dim)')
    ap.add_argument('--float32', action='store_true', help='write float32 features (halves a large file)')
    ap.add_argument('--rho', type=float, default=0.5)
    ap.add_argument('--noise', type=float, default=0.5, help='sigma of u and v')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--embed-seed', type=int, default=12345)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    C = a.n_classes
    dims = (a.dim, a.dim2 or a.dim)
    if any(d and d < C for d in dims):
        sys.exit(f'make_data.py: --dim {a.dim} / --dim2 {a.dim2} is below the {C} dimensions of the signal')

    rs = np.random.RandomState(a.seed)
    train = list(gaussian_split(rs, int(0.8 * a.n), C, a.rho, a.noise))
    val = list(gaussian_split(rs, int(0.2 * a.n), C, a.rho, a.noise))
    if any(d and d != C for d in dims):
        ers = np.random.RandomState(a.embed_seed)
        E = [orthonormal_columns(ers, d or C, C) for d in dims]
        for split in (train, val):
            split[0] = split[0] @ E[0].T
            split[1] = split[1] @ E[1].T
    if a.float32:
        for split in (train, val):
            split[0] = split[0].astype(np.float32)
            split[1] = split[1].astype(np.float32)
    with open(a.out, 'wb') as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, train_x1=train[0], train_x2=train[1], train_y=train[2],
                 val_x1=val[0], val_x2=val[1], val_y=val[2])
    print(f'{a.out}: gaussian, {len(train[2])} train and {len(val[2])} val rows, '
          f'd1 {train[0].shape[1]}, d2 {train[1].shape[1]}, {C} classes')


if __name__ == '__main__':
    main()
