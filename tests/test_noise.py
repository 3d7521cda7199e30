"""Noise controls against a naive oracle of the published 16·D SLERP path, and statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import noise

KEY = jax.random.key(0)


def naive_path_alphas(num_slices):
    """The reference construction: 16·D interior path points, D taken centre-out with stride 16."""
    path = np.linspace(0.0, 1.0, 16 * num_slices + 2)[1:-1]
    centre = 8 * num_slices
    picked, offset = [centre], 16
    while len(picked) < num_slices:
        for index in (centre - offset, centre + offset):
            if len(picked) < num_slices and 0 <= index < len(path):
                picked.append(index)
        offset += 16
    return path[np.sort(picked)]


def naive_slerp(z0, z1, alphas):
    """float64 SLERP of flattened numpy endpoints, one point per alpha."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    cos = np.dot(z0.ravel(), z1.ravel()) / (np.linalg.norm(z0) * np.linalg.norm(z1) + 1e-8)
    theta = np.arccos(np.clip(cos, -1 + 1e-7, 1 - 1e-7))
    return np.stack([(np.sin((1 - a) * theta) * z0 + np.sin(a * theta) * z1) / (np.sin(theta) + 1e-8)
                     for a in alphas])


@pytest.mark.parametrize("num_slices", [1, 2, 3, 8, 30, 64])
def test_alphas_match_naive_path(num_slices):
    np.testing.assert_allclose(noise.slerp_alphas(num_slices), naive_path_alphas(num_slices),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("num_slices", [1, 2, 3, 8, 30, 64])
def test_iscs_matches_naive_construction(num_slices):
    key0, key1 = jax.random.split(KEY)
    z0, z1 = jax.random.normal(key0, (16, 16)), jax.random.normal(key1, (16, 16))
    fast = noise.iscs_from_endpoints(z0, z1, jnp.arange(num_slices), num_slices)
    oracle = naive_slerp(z0, z1, naive_path_alphas(num_slices))
    np.testing.assert_allclose(fast, oracle, rtol=1e-4, atol=1e-5)
    # slice_noise("iscs") draws its endpoints from split(key) exactly as above.
    drawn = noise.slice_noise(KEY, "iscs", jnp.arange(num_slices), num_slices, (16, 16))
    np.testing.assert_allclose(drawn, fast, rtol=1e-6, atol=1e-6)


def test_degenerate_angles_use_linear_weights():
    alphas = noise.slerp_alphas(4)
    for theta in (0.0, np.pi):
        w0, w1 = jax.jit(noise.slerp_weights)(jnp.float32(theta), alphas)
        np.testing.assert_allclose(w0, 1 - alphas, atol=1e-7)
        np.testing.assert_allclose(w1, alphas, atol=1e-7)
    w0, w1 = noise.slerp_weights(jnp.float32(np.pi / 2), alphas)
    np.testing.assert_allclose(w0, np.sin((1 - alphas) * np.pi / 2), rtol=1e-5)


def test_parallel_endpoints_stay_finite():
    """float32 clipping keeps theta ~5e-4, so slerp(z, z) = z to O(theta^2) and never NaN."""
    z = jax.random.normal(KEY, (8, 8))
    out = jax.jit(noise.slerp)(z, z, noise.slerp_alphas(4))
    np.testing.assert_allclose(out, np.stack([z] * 4), atol=1e-4)
    assert np.all(np.isfinite(jax.jit(noise.slerp)(z, -z, noise.slerp_alphas(4))))


@pytest.mark.parametrize("kind", ["iid", "iscs", "shared"])
def test_per_slice_marginals_are_standard_normal(kind):
    """Over 400 keys, each slice's 32x32 values have mean ~0 and variance ~1.

    With n = 400·1024 samples the standard error of the mean is 1/sqrt(n) ~ 1.6e-3 and of the
    variance sqrt(2/n) ~ 2.2e-3, but samples in one slice share a key (for iscs the slerp weights
    depend on the key), so tolerances are set at ~10 standard errors of the per-key means.
    """
    num_slices, keys = 6, jax.random.split(KEY, 400)
    draw = jax.vmap(lambda k: noise.slice_noise(k, kind, jnp.arange(num_slices), num_slices, (32, 32)))
    samples = np.asarray(draw(keys))  # [keys, D, 32, 32]
    per_slice = samples.transpose(1, 0, 2, 3).reshape(num_slices, -1)
    np.testing.assert_allclose(per_slice.mean(axis=1), 0.0, atol=0.02)
    np.testing.assert_allclose(per_slice.var(axis=1), 1.0, atol=0.03)


def test_adjacent_slice_correlation_follows_slerp_angle():
    """Neighbours are 16/(16D+1) apart on the path, so their cosine is ~cos(16 theta/(16D+1)).

    Exact only if |z0| = |z1|; at 64x64 the norms differ by O(1/sqrt(4096)), hence 1e-3.
    """
    num_slices, shape = 10, (64, 64)
    key0, key1 = jax.random.split(KEY)
    z0, z1 = np.asarray(jax.random.normal(key0, shape)), np.asarray(jax.random.normal(key1, shape))
    theta = np.arccos(np.dot(z0.ravel(), z1.ravel()) / (np.linalg.norm(z0) * np.linalg.norm(z1)))
    expected = np.cos(16 * theta / (16 * num_slices + 1))
    volume = np.asarray(noise.slice_noise(KEY, "iscs", jnp.arange(num_slices), num_slices, shape))
    for k in range(num_slices - 1):
        a, b = volume[k].ravel(), volume[k + 1].ravel()
        cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
        assert abs(cos - expected) < 1e-3
    assert expected > 0.9  # neighbours nearly equal...
    iid = np.asarray(noise.slice_noise(KEY, "iid", jnp.arange(num_slices), num_slices, shape))
    assert abs(np.corrcoef(iid[0].ravel(), iid[1].ravel())[0, 1]) < 0.05  # ...unlike iid


@pytest.mark.parametrize("kind", ["iid", "iscs", "shared"])
@pytest.mark.parametrize("num_slices", [7, 12])
def test_any_partition_concatenates_to_full_volume(kind, num_slices):
    """Equal up to float32 rounding (XLA may vectorise sin differently for other lengths)."""
    full = noise.slice_noise(KEY, kind, jnp.arange(num_slices), num_slices, (8, 8))
    rng = np.random.default_rng(num_slices)
    cuts = np.sort(rng.choice(np.arange(1, num_slices), size=3, replace=False))
    parts = [noise.slice_noise(KEY, kind, jnp.asarray(ids), num_slices, (8, 8))
             for ids in np.split(np.arange(num_slices), cuts)]
    np.testing.assert_allclose(np.concatenate(parts), full, rtol=1e-5, atol=1e-6)
    reversed_ids = jnp.arange(num_slices)[::-1]
    np.testing.assert_allclose(
        noise.slice_noise(KEY, kind, reversed_ids, num_slices, (8, 8)), full[::-1], rtol=1e-5, atol=1e-6)


def test_kinds_differ_and_jit():
    ids = jnp.arange(4)
    fn = jax.jit(noise.slice_noise, static_argnums=(1, 3, 4))
    iid, iscs, shared = (fn(KEY, kind, ids, 4, (8, 8)) for kind in ("iid", "iscs", "shared"))
    assert not np.allclose(iid[0], iid[1])
    np.testing.assert_array_equal(shared[0], shared[3])
    assert not np.allclose(iscs[0], iscs[1]) and np.corrcoef(iscs[0].ravel(), iscs[1].ravel())[0, 1] > 0.9


def test_unknown_kind_and_bad_num_slices():
    with pytest.raises(ValueError, match="valid kinds"):
        noise.make_noise_fn("gaussian")
    with pytest.raises(ValueError, match="num_slices"):
        noise.slerp_alphas(0)
