"""The operator protocol (`iscs_jax.operators.protocol`), checked on every registered operator.

Parameterised over ``tests/operator_examples.py`` (one small instance per name of
`operators.OPERATORS`): adjoint identity, shapes, coupling honesty (a perturbed
slice changes only the rows its coupling allows), jit and gradients, baseline
shape and name, pseudo-inverse where one exists, and sharded == unsharded on
1, 2 and 4 fake devices (one subprocess for all operators).
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import operators
from iscs_jax.operators import protocol
from device_checks import run_check

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import operator_examples  # noqa: E402

EXAMPLES = operator_examples.examples()
SETTINGS = operator_examples.settings_examples()
NAMES = sorted(EXAMPLES)
CHECK_SCRIPT = "operator_contract_check.py"


def _random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _measurement(op, volume_shape, seed):
    """A random y of the operator's measurement shape, complex if its A is (e.g. MRI k-space)."""
    shape = op.measurement_shape(volume_shape[0])
    if not jnp.iscomplexobj(op.A(jnp.zeros(volume_shape))):
        return _random(shape, seed)
    return (_random(shape, seed) + 1j * _random(shape, seed + 100)).astype(jnp.complex64)


def test_every_registered_operator_has_an_example():
    assert set(EXAMPLES) == set(operators.OPERATORS)
    for name, (op, _) in EXAMPLES.items():
        assert type(op) is operators.OPERATORS[name]


@pytest.mark.parametrize("name", NAMES)
def test_builds_itself_from_settings_and_describes_itself(name):
    assert set(SETTINGS) == set(operators.OPERATORS)
    volume_shape, kwargs, expected, description = SETTINGS[name]
    op = operators.build(name, volume_shape, **kwargs)
    assert type(op) is operators.OPERATORS[name] and op == expected
    assert op == operators.OPERATORS[name].from_settings(volume_shape, **kwargs)
    assert op.describe() == description
    assert set(kwargs) - set(operators.COMMON_ARGUMENTS) <= set(operators.setting_names(name))
    with pytest.raises(ValueError, match=r"not \['bogus'\]"):
        operators.build(name, volume_shape, bogus=1, **kwargs)


def test_build_errors_name_the_argument():
    with pytest.raises(ValueError, match="kind='helical'"):
        operators.build("helical", (1, 8, 8))
    for kind in ("parallel_beam", "fan_beam", "cone_beam", "zblur"):
        settings = {} if kind == "zblur" else dict(num_views=4)
        with pytest.raises(ValueError, match="plane='coronal'"):
            operators.build(kind, (4, 32, 32), plane="coronal", **settings)
    with pytest.raises(ValueError, match="num_detectors=-1"):
        operators.build("parallel_beam", (1, 8, 8), num_views=4, num_detectors=-1)
    with pytest.raises(ValueError, match="factor=0"):
        operators.build("zsr", (4, 8, 8), factor=0)
    with pytest.raises(ValueError, match="acceleration=0.5"):
        operators.build("cartesian_mri", (4, 8, 8), acceleration=0.5)
    assert operators.SINOGRAM_KINDS == ("parallel_beam", "fan_beam")


@pytest.mark.parametrize("name", NAMES)
def test_protocol_attributes(name):
    op, volume_shape = EXAMPLES[name]
    assert protocol.coupling(op) in protocol.COUPLINGS
    assert op.slicewise == (op.coupling == "slicewise")
    assert isinstance(protocol.baseline_name(op), str)
    assert hash(op) == hash(op) and op == op  # static-argument ready
    if op.coupling == "halo":
        assert protocol.halo(op) >= 1
    if op.coupling != "slicewise":
        assert protocol.has_sharded(op)
    if op.coupling == "global":
        assert tuple(op.volume_shape) == tuple(volume_shape)


@pytest.mark.parametrize("name", NAMES)
def test_adjoint_identity_and_shapes(name):
    """<A x, y> = <x, AT y> to 1e-4 relative in float32 (Re <A x, y> for complex y: AT is the
    adjoint for real images); shapes match the protocol."""
    op, volume_shape = EXAMPLES[name]
    x = _random(volume_shape, 0)
    y = _measurement(op, volume_shape, 1)
    ax, aty = op.A(x), op.AT(y)
    assert ax.shape == tuple(op.measurement_shape(volume_shape[0]))
    assert aty.shape == tuple(volume_shape)
    lhs, rhs = float(jnp.real(jnp.vdot(ax, y))), float(jnp.vdot(x, aty))
    assert abs(lhs - rhs) <= 1e-4 * max(abs(lhs), abs(rhs)), (lhs, rhs)


@pytest.mark.parametrize("name", NAMES)
def test_coupling_is_honest(name):
    """Perturbing slice k changes only the measurement rows the coupling allows
    (slice-wise: row k; halo r: rows k - r .. k + r; global: anything)."""
    op, volume_shape = EXAMPLES[name]
    if op.coupling == "global":
        assert protocol.num_slices(op, None) == volume_shape[0]
        return
    x = _random(volume_shape, 2)
    k = volume_shape[0] // 2
    changed = op.A(x.at[k].add(1.0)) - op.A(x)
    rows = np.nonzero(np.abs(np.asarray(changed)).reshape(volume_shape[0], -1).max(1) > 1e-6)[0]
    radius = protocol.halo(op)
    assert k in rows and set(rows) <= set(range(k - radius, k + radius + 1)), rows
    assert protocol.num_slices(op, changed) == volume_shape[0]
    if op.coupling == "slicewise":  # batched equals one by one
        one_by_one = jnp.stack([op.A(s[None])[0] for s in x])
        np.testing.assert_allclose(op.A(x), one_by_one, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_gradient(name):
    """jit(A) equals A, and grad of ||A x - y||^2 / 2 is AT(A x - y) (DPS differentiates A)."""
    op, volume_shape = EXAMPLES[name]
    x = _random(volume_shape, 3)
    y = _measurement(op, volume_shape, 4)
    np.testing.assert_allclose(jax.jit(op.A)(x), op.A(x), rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda v: 0.5 * jnp.sum(jnp.abs(op.A(v) - y) ** 2))(x)
    expected = op.AT(op.A(x) - y)
    np.testing.assert_allclose(grad, expected, atol=1e-4 * float(jnp.abs(expected).max()))


@pytest.mark.parametrize("name", NAMES)
def test_baseline_shape(name):
    op, volume_shape = EXAMPLES[name]
    x = _random(volume_shape, 5)
    out = op.baseline(op.A(x))
    assert out.shape == tuple(volume_shape) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("name", [n for n in NAMES if protocol.has_pinv(EXAMPLES[n][0])])
def test_pinv_is_a_pseudo_inverse(name):
    """pinv(A(pinv(y))) = pinv(y) and A(pinv(A x)) = A x (Moore-Penrose conditions)."""
    op, volume_shape = EXAMPLES[name]
    x = _random(volume_shape, 6)
    y = _measurement(op, volume_shape, 7)
    p = op.pinv(y)
    np.testing.assert_allclose(op.pinv(op.A(p)), p, atol=1e-4 * float(jnp.abs(p).max()))
    ax = op.A(x)
    np.testing.assert_allclose(op.A(op.pinv(ax)), ax, atol=1e-4 * float(jnp.abs(ax).max()))


@pytest.mark.parametrize("name", NAMES)
def test_gram_form_is_the_normal_operator(name):
    """`protocol.gram_form`: decode(encode(x)) = x and decode(gram(encode(x))) = AT(A(x)), for
    operators with their own layout and the default alike."""
    op, volume_shape = EXAMPLES[name]
    x = _random(volume_shape, 8)
    form = protocol.gram_form(op)
    np.testing.assert_array_equal(form.decode(form.encode(x)), x)
    expected = op.AT(op.A(x))
    got = jax.jit(lambda v: form.decode(form.gram(form.encode(v))))(x)
    np.testing.assert_allclose(got, expected, atol=1e-5 * float(jnp.abs(expected).max()))


@pytest.fixture(scope="module")
def sharded_report():
    """Runs `operator_contract_check.py` with 4 fake CPU devices; returns its JSON report."""
    return run_check(CHECK_SCRIPT)


@pytest.mark.slow  # the 4-device subprocess: ~65 s
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_devices", [1, 2, 4])
def test_sharded_equals_unsharded(sharded_report, name, num_devices):
    """AT(A x) and AT(y) on slice-sharded volumes (D = 5 slices, padded to 6 or 8) equal the
    unsharded ones within 1e-5 relative; padded slices stay 0."""
    normal, adjoint, padded = sharded_report[f"{name}_n{num_devices}"]
    assert normal <= 1e-5 and adjoint <= 1e-5, (normal, adjoint)
    assert padded == 0.0


@pytest.mark.slow  # the 4-device subprocess: ~65 s
@pytest.mark.parametrize("name", [n for n in NAMES if EXAMPLES[n][0].coupling != "slicewise"])
@pytest.mark.parametrize("num_devices", [1, 2, 4])
def test_sharded_sampler_equals_one_device(sharded_report, name, num_devices):
    """samplers.reconstruct_sharded (DDS, 3 steps, ISCS noise) with a slice-coupling operator
    equals dds.reconstruct on one device within 1e-5 (D = 5 slices on 2 and 4 devices)."""
    error, shape = sharded_report[f"sampler_{name}_n{num_devices}"]
    assert error <= 1e-5, error
    assert shape == list(EXAMPLES[name][1])
