"""scikit-learn side of the k-means benchmark (Debian python3-sklearn), and the data both sides read.

  kmeans.py generate --out X.f32 --n 50000 --d 256 --seed 0   # raw float32, row-major n x d
  kmeans.py fit --data X.f32 --n 50000 --d 256 --k 100 --iterations 20 --seed 1 --threads 2

fit prints one JSON line: {"seconds", "inertia", "iterations"}; the time covers KMeans.fit only.
Run with Debian's /usr/bin/python3.
"""
import argparse
import json
import time

import numpy as np


def generate(args):
    """Gaussian blobs of uneven size and spread around 300 random centers."""
    rng = np.random.default_rng(args.seed)
    blobs = 300
    centers = rng.standard_normal((blobs, args.d)).astype(np.float32)
    spreads = rng.uniform(0.3, 1.0, blobs).astype(np.float32)
    weights = rng.dirichlet(np.full(blobs, 2.0))
    members = rng.choice(blobs, size=args.n, p=weights)
    x = centers[members] + rng.standard_normal((args.n, args.d)).astype(np.float32) * spreads[members, None]
    x.astype(np.float32).tofile(args.out)


def fit(args):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = np.fromfile(args.data, dtype=np.float32).reshape(args.n, args.d)
    model = KMeans(n_clusters=args.k, init="k-means++", n_init=1, max_iter=args.iterations, tol=0, algorithm="lloyd", random_state=args.seed)
    with threadpool_limits(limits=args.threads):
        start = time.perf_counter()
        model.fit(x)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "inertia": float(model.inertia_), "iterations": int(model.n_iter_)}))


parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["generate", "fit"])
parser.add_argument("--out")
parser.add_argument("--data")
parser.add_argument("--n", type=int, default=50000)
parser.add_argument("--d", type=int, default=256)
parser.add_argument("--k", type=int, default=100)
parser.add_argument("--iterations", type=int, default=20)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
generate(args) if args.mode == "generate" else fit(args)
