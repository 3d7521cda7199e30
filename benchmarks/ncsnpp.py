"""NCSN++ forward speed: ``python benchmarks/ncsnpp.py [--batches 1,8] [--dtype bfloat16]``.

Times the jitted score network of ``configs/models/ncsnpp_256.py`` (random weights) per slice at
each batch size, takes its FLOPs from XLA's compiled cost analysis, and prints the achieved
GFLOP/s next to a jitted 2048x2048 float32 matmul measured in the same run, right after each
batch size (the ratio is the figure to compare across machines). ``--dtype bfloat16`` computes in bfloat16 (for GPUs/TPUs;
parameters stay float32). ``--config_arg tiny`` runs the 32x32 test network in seconds.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from iscs_jax.convert import score_sde  # noqa: E402
from iscs_jax.models import ncsnpp  # noqa: E402

MODEL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "models" / "ncsnpp_256.py"


def flops_of(compiled) -> float:
    """FLOPs of a compiled executable from XLA's cost analysis."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def timed(fn, *args, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` over ``repeats`` calls (after one warm-up call)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(dtype, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a jitted n x n matmul."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    return flops_of(compiled) / timed(compiled, a, b, repeats=repeats) / 1e9


def random_state(cfg: ncsnpp.NCSNppConfig, dtype):
    """``(graphdef, state)`` with random float32 weights (numpy: no compilation)."""
    abstract = nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, dtype=dtype, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: 0.05 * rng.standard_normal(s.shape, np.float32),
                          nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, params)
    return graphdef, state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--config_arg", default=None, help="'tiny': the 32x32 test network")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)
    cfg, _ = score_sde.ncsnpp_config(str(MODEL_CONFIG) + (f":{args.config_arg}"
                                                          if args.config_arg else ""))
    graphdef, state = random_state(cfg, dtype)
    score = jax.jit(lambda state, x, sigma: nnx.merge(graphdef, state)(x, sigma))
    print(f"device={jax.devices()[0].device_kind} dtype={args.dtype} "
          f"image={cfg.image_size} nf={cfg.nf}")
    if dtype != jnp.float32:
        print(f"jitted 2048x2048 {args.dtype} matmul: {matmul_rate(dtype):.1f} GFLOP/s")
    # The float32 matmul is measured again next to each batch size (a shared machine drifts).
    print(f"{'batch':>5} {'compile s':>9} {'s/slice':>9} {'GFLOP/slice':>11} {'GFLOP/s':>8} "
          f"{'matmul GFLOP/s':>14} {'vs matmul':>9}")
    for batch in (int(b) for b in args.batches.split(",")):
        x = jax.random.uniform(jax.random.key(1), (batch, cfg.image_size, cfg.image_size,
                                                   cfg.num_channels))
        sigma = jnp.full((batch,), 5.0)
        start = time.perf_counter()
        compiled = score.lower(state, x, sigma).compile()
        compile_s = time.perf_counter() - start
        seconds = timed(compiled, state, x, sigma, repeats=args.repeats)
        reference = matmul_rate(jnp.float32)
        gflop = flops_of(compiled) / 1e9
        rate = gflop / seconds
        print(f"{batch:>5} {compile_s:>9.1f} {seconds / batch:>9.3f} {gflop / batch:>11.1f} "
              f"{rate:>8.1f} {reference:>14.1f} {rate / reference:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
