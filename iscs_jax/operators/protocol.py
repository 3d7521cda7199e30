"""The measurement-operator protocol every operator in `iscs_jax.operators` satisfies.

An operator is a frozen dataclass (hashable, so it can be a static ``jax.jit``
argument or be closed over by ``jax.shard_map``) with:

* ``A(x)``: volume ``[D, H, W]`` -> measurement of shape ``measurement_shape(D)``;
* ``AT(y)``: the exact adjoint of the discretised ``A`` (<A x, y> = <x, AT y>);
* ``measurement_shape(num_slices) -> tuple``;
* ``coupling``: how measurements couple slices, one of `COUPLINGS`:
  ``"slicewise"`` (row k of y depends only on slice k of x; y has the slices as
  its leading axis), ``"halo"`` (row k depends on slices k - halo .. k + halo;
  the operator has an int ``halo``) or ``"global"`` (y is not split by slice,
  e.g. cone-beam CT, whose rays cross slices);
* ``slicewise``: the legacy bool, ``coupling == "slicewise"``;
* ``baseline(y) -> [D, H, W]`` and ``baseline_name`` (``"fbp"``, ``"fdk"``,
  ``"measured"``, ...): the classical reconstruction used for warm starts and
  the baseline row of a report;
* a registered operator (`operators.OPERATORS`) also has the classmethod
  ``from_settings(volume_shape, *, plane, filter_name, **settings)`` (its construction
  from plain settings, `operators.build`), ``describe() -> str`` (one line for a log)
  and, if measured data can be read per slice, ``accepts_sinogram = True``;
* optionally ``pinv(y)``, an exact pseudo-inverse (`has_pinv`);
* optionally ``gram_form()``, a `GramForm`: A^T A in a layout of the operator's
  choosing, where CG on the normal equations runs faster (`gram_form`);
* if ``coupling`` is not ``"slicewise"``: ``A_sharded(x_local, axis_name,
  slice_mask)`` and ``AT_sharded(y_local, axis_name, slice_mask)`` for use inside
  ``jax.shard_map`` over a slice-sharded volume (block layout of
  `parallel.local_slice_ids`, padded slices have ``slice_mask == 0``). For a
  ``"global"`` operator the local measurement (what ``A_sharded`` returns and
  ``AT_sharded`` takes) is the operator's own choice, and the operator provides
  ``local_measurement(y, axis_name)``: this device's share of the full ``y``,
  which is then passed in replicated, and ``volume_shape`` (its ``[D, H, W]``).

The functions below read these attributes with fallbacks for operators written
before the protocol (a bare ``slicewise`` flag), so samplers never need
``getattr`` chains of their own.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax

#: The values of ``operator.coupling``.
COUPLINGS = ("slicewise", "halo", "global")


class Operator(Protocol):
    """Structural type of a measurement operator (see the module docstring)."""

    coupling: str
    baseline_name: str

    def A(self, x: jax.Array) -> jax.Array: ...  # noqa: D102, E704

    def AT(self, y: jax.Array) -> jax.Array: ...  # noqa: D102, E704

    def measurement_shape(self, num_slices: int) -> tuple[int, ...]: ...  # noqa: D102, E704

    def baseline(self, y: jax.Array) -> jax.Array: ...  # noqa: D102, E704


def coupling(operator: Any) -> str:
    """``operator.coupling``; for pre-protocol operators ``"slicewise"`` if their
    ``slicewise`` flag is set, else ``"global"``."""
    value = getattr(operator, "coupling", None)
    if value is None:
        value = "slicewise" if getattr(operator, "slicewise", False) else "global"
    if value not in COUPLINGS:
        raise ValueError(f"{type(operator).__name__}.coupling={value!r} is not one of "
                         f"{COUPLINGS}.")
    return value


def is_slicewise(operator: Any) -> bool:
    """Whether row k of ``A(x)`` depends only on slice k (apply locally when sharded)."""
    return coupling(operator) == "slicewise"


def halo(operator: Any) -> int:
    """Slices coupled on each side: 0 (slice-wise), ``operator.halo`` or, for a global
    operator, ``None``."""
    kind = coupling(operator)
    if kind == "global":
        return None
    return 0 if kind == "slicewise" else int(operator.halo)


def has_pinv(operator: Any) -> bool:
    """Whether the operator provides an exact pseudo-inverse ``pinv(y)``."""
    return callable(getattr(operator, "pinv", None))


class GramForm(NamedTuple):
    """A^T A in an internal layout: CG iterates on ``encode(v)`` and returns ``decode(.)``.

    Attributes:
      encode: ``[D, H, W]`` -> the internal layout (linear, a permutation of entries).
      gram: A^T A on the internal layout.
      decode: the inverse of ``encode``.
    """

    encode: Callable[[jax.Array], jax.Array]
    gram: Callable[[jax.Array], jax.Array]
    decode: Callable[[jax.Array], jax.Array]


def gram_form(operator: Any) -> GramForm:
    """``operator.gram_form()`` if it has one, else ``AT(A(v))`` on ``[D, H, W]`` as it is."""
    form = getattr(operator, "gram_form", None)
    if callable(form):
        return form()
    same = lambda v: v  # noqa: E731
    return GramForm(same, lambda v: operator.AT(operator.A(v)), same)


def has_sharded(operator: Any) -> bool:
    """Whether the operator can run on a slice-sharded volume inside ``jax.shard_map``
    (slice-wise, or with ``A_sharded`` / ``AT_sharded``)."""
    return is_slicewise(operator) or (callable(getattr(operator, "A_sharded", None))
                                      and callable(getattr(operator, "AT_sharded", None)))


def num_slices(operator: Any, y) -> int:
    """The slice count D of the volume measured as ``y``.

    The leading axis of ``y`` for slice-wise and halo operators; ``volume_shape[0]``
    for a global operator (its y has no slice axis; a pre-protocol operator without
    ``volume_shape`` falls back to the leading axis).
    """
    if coupling(operator) == "global" and hasattr(operator, "volume_shape"):
        return int(operator.volume_shape[0])
    return int(jax.numpy.shape(y)[0])


def local_measurement(operator: Any, y: jax.Array, axis_name: str) -> jax.Array:
    """This device's share of the measurement, inside ``jax.shard_map``.

    For slice-wise and halo operators y is already sharded by slice, so the local
    block is returned unchanged; a global operator receives the full (replicated)
    ``y`` and cuts its own share with ``operator.local_measurement``.
    """
    if coupling(operator) != "global":
        return y
    return operator.local_measurement(y, axis_name)


def baseline_name(operator: Any) -> str:
    """The name of ``operator.baseline`` (e.g. ``"fbp"``, ``"fdk"``)."""
    name = getattr(operator, "baseline_name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{type(operator).__name__} has no baseline_name; operators must "
                         "name their baseline reconstruction (see operators.protocol).")
    return name
