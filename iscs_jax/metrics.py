"""Image-quality metrics of a reconstructed volume against a reference.

* `psnr`, `ssim`: one 2D image (SSIM as scikit-image's ``structural_similarity``
  with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``:
  11-tap Gaussian window (truncate 3.5), K1 = 0.01, K2 = 0.03, mean over the
  pixels at least 5 from the border).
* `plane_metrics`: mean PSNR / SSIM over the 2D images of one plane.
* `discontinuity`: inter-slice discontinuity (see its docstring).
* `volume_metrics`: everything, as plain floats, in the ``metrics.json`` layout.
* `paired_difference`: mean paired difference of two methods' scores with a 95% Student-t
  confidence interval (cohort summaries).
* `paired_statistics`, `cohort_summary`, `format_paired`: a cohort's ``summary.json`` (means
  over seeds, paired differences over volumes x seeds) and its table.

The data range defaults to ``ref.max() - ref.min()`` of the whole reference
volume and is shared by every image of every plane.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax.data import prepare

#: plane name -> volume axis the images are stacked along ([D, H, W] volumes).
PLANES = {"axial": 0, "coronal": 1, "sagittal": 2}
_K1, _K2, _SIGMA, _TRUNCATE = 0.01, 0.03, 1.5, 3.5


def _data_range(ref, data_range):
    return jnp.max(ref) - jnp.min(ref) if data_range is None else jnp.asarray(data_range)


def psnr(x: jax.Array, ref: jax.Array, data_range=None) -> jax.Array:
    """10 log10(data_range^2 / mean((x - ref)^2)) over all elements (dB, scalar)."""
    x, ref = jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)
    mse = jnp.mean((x - ref) ** 2)
    return 10 * jnp.log10(_data_range(ref, data_range) ** 2 / mse)


def _gaussian_taps() -> np.ndarray:
    radius = int(_TRUNCATE * _SIGMA + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / _SIGMA) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _filter(image: jax.Array) -> jax.Array:
    """Separable Gaussian filter, 'valid' part only ([H, W] -> [H - 10, W - 10])."""
    taps = jnp.asarray(_gaussian_taps())
    rows = jax.vmap(lambda r: jnp.convolve(r, taps, mode="valid"))(image)
    return jax.vmap(lambda c: jnp.convolve(c, taps, mode="valid"), 1, 1)(rows)


def _pad_short_sides(image: jax.Array) -> jax.Array:
    radius = int(_TRUNCATE * _SIGMA + 0.5)
    pads = [(radius, radius) if n < 2 * radius + 1 else (0, 0) for n in image.shape]
    return jnp.pad(image, pads, mode="symmetric") if any(p[0] for p in pads) else image


def ssim(x: jax.Array, ref: jax.Array, data_range=None) -> jax.Array:
    """Mean SSIM of one 2D image ``[H, W]``, as scikit-image computes it.

    Only the pixels whose 11x11 window lies inside the image enter the mean,
    exactly the crop scikit-image applies, so no border handling is needed.
    A side shorter than 11 (where scikit-image raises) is instead padded by
    5 with symmetric reflection and not cropped (all its pixels count).
    Both images are shifted by ``ref``'s mean first (SSIM's variance terms are
    shift-invariant; the means are shifted back) to keep float32 accurate.
    """
    x, ref = jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)
    c1 = (_K1 * _data_range(ref, data_range)) ** 2
    c2 = (_K2 * _data_range(ref, data_range)) ** 2
    shift = jnp.mean(ref)
    a, b = _pad_short_sides(x - shift), _pad_short_sides(ref - shift)
    mu_a, mu_b = _filter(a), _filter(b)
    var_a, var_b = _filter(a * a) - mu_a**2, _filter(b * b) - mu_b**2
    cov = _filter(a * b) - mu_a * mu_b
    mu_x, mu_y = mu_a + shift, mu_b + shift
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_a + var_b + c2))
    return jnp.mean(s)


def plane_metrics(recon: jax.Array, ref: jax.Array, plane: str, data_range=None) -> dict:
    """Mean PSNR and SSIM over the 2D images of one plane of ``[D, H, W]`` volumes.

    Args:
      recon, ref: volumes ``[D, H, W]``.
      plane: ``"axial"`` (images ``[H, W]`` along axis 0), ``"coronal"``
        (``[D, W]`` along axis 1) or ``"sagittal"`` (``[D, H]`` along axis 2).
      data_range: shared by all images; default ``ref.max() - ref.min()``.

    Images whose reference is constant (empty background, e.g. the padding around a
    brain) are left out of the means: their PSNR is infinite for any exact
    reconstruction of the background. If every image is constant, all are used.

    Returns:
      ``{"psnr": float, "ssim": float}``.
    """
    if plane not in PLANES:
        raise ValueError(f"Unknown plane {plane!r}; valid planes: {sorted(PLANES)}.")
    psnr_mean, ssim_mean = _plane_scores(jnp.asarray(recon), jnp.asarray(ref),
                                         _data_range(ref, data_range), PLANES[plane])
    return {"psnr": float(psnr_mean), "ssim": float(ssim_mean)}


@functools.partial(jax.jit, static_argnums=3)
def _plane_scores(recon, ref, data_range, axis):
    images = jnp.moveaxis(recon, axis, 0), jnp.moveaxis(ref, axis, 0)
    psnrs = jax.vmap(lambda a, b: psnr(a, b, data_range))(*images)
    ssims = jax.vmap(lambda a, b: ssim(a, b, data_range))(*images)
    varying = jnp.max(images[1], axis=(1, 2)) > jnp.min(images[1], axis=(1, 2))
    weights = jnp.where(jnp.any(varying), varying, True).astype(jnp.float32)
    mean = lambda v: jnp.sum(jnp.where(weights > 0, v, 0.0)) / jnp.sum(weights)
    return mean(psnrs), mean(ssims)


def discontinuity(recon: jax.Array, ref: jax.Array, data_range=None) -> jax.Array:
    """Inter-slice discontinuity: RMSE of the z-differences, in units of the data range.

    sqrt(mean((diff(recon, axis=0) - diff(ref, axis=0))^2)) / data_range, over
    ``[D - 1, H, W]``. 0 when the reconstruction changes from slice to slice
    exactly as the reference does; independent slice-wise errors (stripes in
    the coronal and sagittal views) raise it. Lower is better. Needs D >= 2.
    """
    if recon.shape[0] < 2:
        raise ValueError(f"discontinuity needs at least 2 slices, got shape {recon.shape}.")
    error = jnp.diff(jnp.asarray(recon, jnp.float32), axis=0) - jnp.diff(jnp.asarray(ref, jnp.float32), axis=0)
    return jnp.sqrt(jnp.mean(error**2)) / _data_range(ref, data_range)


def volume_metrics(recon: jax.Array, ref: jax.Array, data_range=None,
                   stack_axis: int = 0) -> dict:
    """All metrics of a ``[D, H, W]`` reconstruction, as plain Python floats.

    ``stack_axis``: the axis the reconstructed 2D planes are stacked along (0 for axial
    slices, 1 for coronal planes, 2 for sagittal), the one the discontinuity is measured
    along. Computed by one compiled program (`_volume_scores`) and one transfer.

    Returns:
      ``{"psnr": volume PSNR over all voxels, "ssim": mean of the three planes'
      SSIM, "discontinuity": see `discontinuity` (``None`` for a single slice, where
      it does not apply), "axial": {"psnr", "ssim"}, "coronal": {...},
      "sagittal": {...}}``.
    """
    if recon.shape != ref.shape or len(ref.shape) != 3:
        raise ValueError(f"recon and ref must be [D, H, W] of one shape, got {recon.shape}, {ref.shape}.")
    recon, ref = jnp.asarray(recon, jnp.float32), jnp.asarray(ref, jnp.float32)
    scores = jax.device_get(_volume_scores(recon, ref, _data_range(ref, data_range),
                                           int(stack_axis)))
    planes = {name: {"psnr": float(scores[name][0]), "ssim": float(scores[name][1])}
              for name in PLANES}
    return {"psnr": float(scores["psnr"]),
            "ssim": float(np.mean([p["ssim"] for p in planes.values()])),
            "discontinuity": (float(scores["discontinuity"]) if ref.shape[stack_axis] > 1
                              else None),
            **planes}


@functools.partial(jax.jit, static_argnums=3)
def _volume_scores(recon, ref, data_range, stack_axis):
    """Volume PSNR, discontinuity (along ``stack_axis``) and each plane's (PSNR, SSIM) means,
    in one program."""
    scores = {name: _plane_scores(recon, ref, data_range, axis) for name, axis in PLANES.items()}
    scores["psnr"] = psnr(recon, ref, data_range)
    if ref.shape[stack_axis] > 1:
        scores["discontinuity"] = discontinuity(jnp.moveaxis(recon, stack_axis, 0),
                                                jnp.moveaxis(ref, stack_axis, 0), data_range)
    return scores


def metrics_table(volumes, reference, seconds, plane: str = "axial",
                  data_range: float | None = None) -> dict:
    """method -> its ``metrics.json`` entry: `volume_metrics` and ``seconds`` (only
    ``seconds`` without a reference), as plain floats.

    Args:
      volumes: method -> plane stack ``[N, R, R]`` (`data.prepare.to_planes` of ``plane``).
      reference: the ground truth's plane stack, or ``None``.
      seconds: method -> seconds.
      plane: the planes the stacks hold; metrics are computed in the volume's own
        orientation, the discontinuity along the stacking axis of ``plane``.
      data_range: passed to `volume_metrics`.
    """
    table = {}
    for name, volume in volumes.items():
        entry = {} if reference is None else volume_metrics(
            prepare.from_planes(volume, plane), prepare.from_planes(reference, plane),
            data_range=data_range, stack_axis=PLANES[plane])
        table[name] = _to_builtin({**entry, "seconds": seconds[name]})
    return table


def paired_difference(a, b) -> dict:
    """Mean of the paired differences ``a - b`` with its 95% Student-t confidence interval.

    Args:
      a, b: ``[n]`` scores of two methods on the same n cases (volumes x seeds), pair by pair.

    Returns:
      ``{"mean": float, "ci95": [lo, hi], "n": n}``: ``mean +- t_{0.975, n-1} sd / sqrt(n)``
      with ``sd`` the differences' sample standard deviation (ddof 1); ``ci95`` is
      ``[None, None]`` for n = 1, where no interval exists.
    """
    from scipy import stats

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_difference needs two equally long, non-empty sequences, got "
                         f"{a.size} and {b.size} values.")
    diff = a - b
    n, mean = diff.size, float(diff.mean())
    if n == 1:
        return {"mean": mean, "ci95": [None, None], "n": 1}
    half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)
    return {"mean": mean, "ci95": [float(mean - half), float(mean + half)], "n": int(n)}


def _to_builtin(tree):
    if isinstance(tree, dict):
        return {k: _to_builtin(v) for k, v in tree.items()}
    return None if tree is None else float(np.asarray(tree))


#: The metrics compared pair by pair (paths into a ``metrics.json`` entry).
PAIRED_METRICS = ("psnr", "ssim", "discontinuity",
                  *((plane, name) for plane in PLANES for name in ("psnr", "ssim")))


def mean_entry(entries: list):
    """Leaf-wise mean of ``metrics.json`` entries (``None`` where any is ``None``).

    Args:
      entries: entries of the same layout (`metrics_table`'s values), e.g. one per seed.

    Returns:
      one entry of that layout holding the means as floats.
    """
    if isinstance(entries[0], dict):
        return {k: mean_entry([e[k] for e in entries]) for k in entries[0]}
    return None if any(e is None for e in entries) else float(np.mean(entries))


def metric_leaf(entry: dict, key):
    """``entry[key]``, or ``entry[plane][name]`` for a ``(plane, name)`` key of `PAIRED_METRICS`."""
    return entry[key[0]][key[1]] if isinstance(key, tuple) else entry[key]


def method_pairs(methods: list[str], kinds: list[str]) -> list[tuple[str, str]]:
    """The method pairs a cohort compares.

    Args:
      methods: the methods of a ``metrics.json`` (the baseline and the noise controls).
      kinds: the noise controls, in the order compared.

    Returns:
      ``(a, b)`` pairs compared as ``a - b``: later noise controls minus earlier ones, then
      each control minus the baseline (a method that is not a noise control).
    """
    baselines = [m for m in methods if m not in kinds]
    pairs = [(kinds[j], kinds[i]) for i in range(len(kinds)) for j in range(i + 1, len(kinds))]
    return pairs + [(kind, base) for base in baselines for kind in kinds]


def paired_statistics(tables: list[dict], pairs) -> dict:
    """`paired_difference` of each pair and metric over many ``metrics.json`` tables.

    Args:
      tables: one `metrics_table` per case (volume and seed).
      pairs: ``(a, b)`` method pairs (`method_pairs`).

    Returns:
      ``"a-b"`` -> metric -> ``{"mean", "ci95", "n"}``, nested like a ``metrics.json``
      entry; a metric missing in any table (e.g. no discontinuity for a single slice) is
      ``None``.
    """
    paired = {}
    for a, b in pairs:
        out = {}
        for key in PAIRED_METRICS:
            values = [(metric_leaf(t[a], key), metric_leaf(t[b], key)) for t in tables
                      if "psnr" in t[a]]
            ok = values and all(x is not None and y is not None for x, y in values)
            stat = paired_difference(*zip(*values)) if ok else None
            if isinstance(key, tuple):
                out.setdefault(key[0], {})[key[1]] = stat
            else:
                out[key] = stat
        paired[f"{a}-{b}"] = out
    return paired


def cohort_summary(volumes, results: dict, seeds: list[int], kinds: list[str]) -> dict:
    """A cohort's ``summary.json``: per-volume means over seeds and the paired statistics.

    Args:
      volumes: ``[(name, path or None)]`` in order.
      results: ``results[name][seed] = (run folder, metrics.json table)``.
      seeds: the seeds each volume ran with; kinds: the noise controls (`method_pairs`).

    Returns:
      ``{"seeds", "methods", "volumes": [{"name", "path", "metrics", "runs"}], "paired"}``
      (`paired_statistics` over volumes x seeds).
    """
    tables = [results[name][seed][1] for name, _ in volumes for seed in seeds]
    methods = list(tables[0])
    return {"seeds": seeds, "methods": methods,
            "volumes": [{"name": name, "path": None if path is None else str(path),
                         "metrics": {m: mean_entry([results[name][s][1][m] for s in seeds])
                                     for m in methods},
                         "runs": {str(s): str(results[name][s][0]) for s in seeds}}
                        for name, path in volumes],
            "paired": paired_statistics(tables, method_pairs(methods, kinds))}


def format_paired(paired: dict) -> str:
    """`paired_statistics` as text: one row per pair and metric with the mean difference,
    its 95% interval and n."""
    lines = [f"{'pair':<14} {'metric':<14} {'mean diff':>10} {'95% CI':>22} {'n':>4}"]
    lines.append("-" * len(lines[0]))
    for pair, stats in paired.items():
        for key in ("psnr", "ssim", ("axial", "ssim"), ("coronal", "ssim"),
                    ("sagittal", "ssim"), "discontinuity"):
            stat = metric_leaf(stats, key)
            if stat is None:
                continue
            name = " ".join(key) if isinstance(key, tuple) else key
            digits = 2 if key == "psnr" else 4
            lo, hi = stat["ci95"]
            ci = "-" if lo is None else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"
            lines.append(f"{pair:<14} {name:<14} {stat['mean']:>+10.{digits}f} {ci:>22} "
                         f"{stat['n']:>4}")
    return "\n".join(lines)
