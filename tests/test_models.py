"""U-Net shapes, noise conditioning, EDM preconditioning and the loop-friendly convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from iscs_jax.models import conv, norm
from iscs_jax.models import (UNet, UNetConfig, edm_loss_weight, edm_scalings, make_denoise_fn,
                             precondition)

TINY = UNetConfig(base_width=4, channel_mults=(1, 2), attention_resolutions=(8,), norm_groups=2,
                  embedding_dim=8)


@pytest.fixture(scope="module")
def tiny_model():
    """One tiny U-Net for the module (initialising compiles an RNG program per weight shape)."""
    return UNet(TINY, 16, rngs=nnx.Rngs(0))


def _randomised(model):
    """The model with every parameter redrawn N(0, 0.3^2) (zero-init layers made active)."""
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    rng = np.random.default_rng(1)  # numpy: one jax.random program per shape would compile 84x
    leaves = [jnp.asarray(0.3 * rng.standard_normal(x.shape), jnp.float32) for x in leaves]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


def test_unet_shapes_with_and_without_channel_axis(tiny_model):
    model = tiny_model
    x = jax.random.normal(jax.random.key(0), (3, 16, 16))
    apply = nnx.jit(lambda m, x, c: m(x, c))  # eager NNX dispatch is slow on CPU
    assert apply(model, x, jnp.zeros(3)).shape == (3, 16, 16)
    assert apply(model, x[..., None], jnp.zeros(3)).shape == (3, 16, 16, 1)


def test_unet_depends_on_noise_level(tiny_model):
    model = _randomised(tiny_model)
    x = jax.random.normal(jax.random.key(0), (2, 16, 16))
    apply = nnx.jit(lambda m, x, c: m(x, c))
    a = apply(model, x, jnp.full(2, jnp.log(0.05) / 4))
    b = apply(model, x, jnp.full(2, jnp.log(5.0) / 4))
    assert float(jnp.mean(jnp.abs(a - b))) > 1e-3 * float(jnp.mean(jnp.abs(a)))


def test_edm_scalings_closed_form():
    sigma, s = jnp.array([0.01, 0.5, 5.0]), 0.5
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, s)
    # Unit-variance target and input for data of std s (Karras et al. 2022, App. B.6).
    np.testing.assert_allclose(c_in**2 * (sigma**2 + s**2), 1.0, rtol=1e-6)
    np.testing.assert_allclose((c_skip - 1) ** 2 * s**2 + c_skip**2 * sigma**2, c_out**2,
                               rtol=1e-5)
    np.testing.assert_allclose(edm_loss_weight(sigma, s), 1 / c_out**2, rtol=1e-5)
    np.testing.assert_allclose(c_noise, np.log([0.01, 0.5, 5.0]) / 4, rtol=1e-6)


def test_zero_network_is_the_gaussian_posterior_mean():
    # With F = 0, D(x) = mu + s^2/(s^2+sigma^2)(x - mu): the MMSE denoiser of N(mu, s^2) data.
    x = jax.random.normal(jax.random.key(2), (2, 8, 8))
    mu, s, sigma = 0.1, 0.3, 0.7
    d = precondition(lambda h, c: jnp.zeros_like(h), x, sigma, s, mu)
    np.testing.assert_allclose(d, mu + s**2 / (s**2 + sigma**2) * (x - mu), rtol=1e-5, atol=1e-6)


def test_denoise_fn_scalar_sigma_jit_and_identity_at_tiny_sigma(tiny_model):
    model = _randomised(tiny_model)
    graphdef, state = nnx.split(model)
    denoise = jax.jit(make_denoise_fn(graphdef, state, sigma_data=0.5, data_mean=0.2))
    x = jax.random.uniform(jax.random.key(3), (2, 16, 16))
    np.testing.assert_allclose(denoise(x, 1e-4), x, atol=2e-3)
    np.testing.assert_allclose(denoise(x, 0.3), denoise(x, jnp.full(2, 0.3)), rtol=1e-6)
    assert float(jnp.max(jnp.abs(denoise(x, 1.0) - x))) > 1e-2


CONV_CASES = [((3, 3), "SAME", (1, 1)), ((1, 1), "SAME", (1, 1)),
              ((3, 3), ((1, 1), (0, 2)), (1, 1)), ((3, 3), "SAME", (2, 2))]  # the last one (stride 2) falls back to jax.lax


@pytest.mark.parametrize("kernel,padding,strides", CONV_CASES)
def test_conv_value_and_gradients_match_lax(kernel, padding, strides):
    x = jax.random.normal(jax.random.key(4), (2, 8, 8, 3))
    w = jax.random.normal(jax.random.key(5), (*kernel, 3, 5))
    dn = ("NHWC", "HWIO", "NHWC")
    ours = lambda x, w: conv.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn)
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
    g = jax.random.normal(jax.random.key(6), ref(x, w).shape)
    for got, want in zip(jax.vjp(ours, x, w)[1](g), jax.vjp(ref, x, w)[1](g)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_input_gradient_in_a_loop_keeps_the_kernel_layout():
    """Inside a scan, JAX's own input gradient addresses the kernel through swapped labels
    (``01oi``), which XLA:CPU runs as a slow generic convolution; ours never does."""
    x = jax.random.normal(jax.random.key(7), (2, 8, 8, 4))
    w = jax.random.normal(jax.random.key(8), (3, 3, 4, 4))
    dn = ("NHWC", "HWIO", "NHWC")
    layer = lambda v: conv.conv_general_dilated(v, w, (1, 1), "SAME", dimension_numbers=dn)
    body = lambda c, _: (jax.vjp(layer, c)[1](c)[0], None)
    loop = jax.jit(lambda x: jax.lax.scan(body, x, None, length=2)[0])
    assert "_01oi->" not in loop.lower(x).compile().as_text()  # XLA:CPU, the test backend
    reference = x
    for _ in range(2):
        reference = jax.vjp(lambda v: jax.lax.conv_general_dilated(
            v, w, (1, 1), "SAME", dimension_numbers=dn), reference)[1](reference)[0]
    np.testing.assert_allclose(loop(x), reference, rtol=1e-4, atol=1e-4)


def test_one_by_one_kernel_gradient_is_a_matrix_product():
    """The 1x1 kernel gradient runs as an einsum (no convolution in its compiled program)."""
    x = jax.random.normal(jax.random.key(9), (2, 8, 8, 6))
    w = jax.random.normal(jax.random.key(10), (1, 1, 6, 4))
    g = jax.random.normal(jax.random.key(11), (2, 8, 8, 4))
    dn = ("NHWC", "HWIO", "NHWC")
    kernel_grad = jax.jit(jax.grad(lambda w, x, g: jnp.sum(g * conv.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=dn))))  # x, g arguments: nothing to fold
    assert "convolution(" not in kernel_grad.lower(w, x, g).compile().as_text()
    np.testing.assert_allclose(kernel_grad(w, x, g),
                               jnp.einsum("bhwi,bhwo->io", x, g)[None, None], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,groups", [(8, 2), (32, 4)])  # 32x32: matrix-product statistics
def test_group_norm_matches_flax_and_its_fused_silu_gradient_matches_autodiff(size, groups):
    channels = 8
    keys = jax.random.split(jax.random.key(11), 4)
    x = 2.0 * jax.random.normal(keys[0], (3, size, size, channels)) + 0.5
    scale = 1.0 + jax.random.normal(keys[1], (channels,))
    bias = jax.random.normal(keys[2], (channels,))
    ours = norm.GroupNorm(channels, groups)
    flax_norm = nnx.GroupNorm(channels, num_groups=groups, epsilon=1e-6, rngs=nnx.Rngs(0))
    ours.scale[...], ours.bias[...] = scale, bias
    flax_norm.scale[...], flax_norm.bias[...] = scale, bias
    np.testing.assert_allclose(ours(x), flax_norm(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours(x, silu=True), jax.nn.silu(flax_norm(x)), rtol=1e-5, atol=1e-5)

    cotangent = jax.random.normal(keys[3], x.shape)

    def reference(x, scale, bias):  # JAX's own differentiation of the unfused form
        return jax.nn.silu(norm.group_norm(x, scale, bias, groups, 1e-6))

    want = jax.vjp(reference, x, scale, bias)[1](cotangent)
    got = jax.vjp(lambda *a: norm.group_norm_silu(*a, groups, 1e-6), x, scale, bias)[1](cotangent)
    for g, w in zip(got, want):  # measured ~4e-7 of the largest entry (float32 rounding)
        assert float(jnp.abs(g - w).max()) <= 3e-6 * float(jnp.abs(w).max())
