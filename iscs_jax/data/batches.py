"""Random training batches as a pure function of ``(seed, index)``.

Batch ``index`` belongs to epoch ``index // batches_per_epoch``; each epoch
visits every slice once (in a permutation drawn from ``(seed, epoch)``; the
last ``num_slices % batch_size`` slices of that permutation are dropped) and
each batch draws its own horizontal and vertical flips from ``(seed, index)``.
No state but the integer ``index``: a trainer stores it in its checkpoint and
resumes with ``batch_at(slices, seed, index, batch_size)``, bit for bit.
"""

from __future__ import annotations

import functools
import queue
import threading
from typing import Iterator

import chex
import numpy as np


def batches_per_epoch(num_slices: int, batch_size: int) -> int:
    """Full batches per epoch, ``num_slices // batch_size``.

    Raises:
      ValueError: if ``batch_size`` is not in ``[1, num_slices]``.
    """
    if not 1 <= batch_size <= num_slices:
        raise ValueError(f"batch_size must be in [1, num_slices={num_slices}], got "
                         f"{batch_size}; lower batch_size or add data.")
    return num_slices // batch_size


@functools.lru_cache(maxsize=4)
def epoch_permutation(num_slices: int, seed: int, epoch: int) -> np.ndarray:
    """The (read-only) order ``[num_slices]`` in which epoch ``epoch`` visits the slices."""
    order = np.random.default_rng([int(seed), 0, int(epoch)]).permutation(num_slices)
    order.setflags(write=False)
    return order


def batch_indices(num_slices: int, seed: int, index: int,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which slices batch ``index`` holds and how each is flipped.

    Returns:
      ``(ids [B] int, flip_horizontal [B] bool, flip_vertical [B] bool)``.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}.")
    per_epoch = batches_per_epoch(num_slices, batch_size)
    epoch, step = divmod(int(index), per_epoch)
    ids = epoch_permutation(num_slices, seed, epoch)[step * batch_size:(step + 1) * batch_size]
    flips = np.random.default_rng([int(seed), 1, int(index)]).random((2, batch_size)) < 0.5
    return ids, flips[0], flips[1]


def batch_at(slices: np.ndarray, seed: int, index: int, batch_size: int,
             flips: bool = True) -> np.ndarray:
    """Batch number ``index`` of the endless epoch sequence, by vectorised indexing.

    Args:
      slices: ``[N, H, W]`` training slices.
      seed: data seed.
      index: global batch index (0, 1, 2, ...), e.g. the training step.
      batch_size: B, at most N.
      flips: apply the random horizontal / vertical flips.

    Returns:
      ``[B, H, W]`` numpy array, same dtype as ``slices``.
    """
    chex.assert_rank(slices, 3)
    ids, flip_h, flip_v = batch_indices(slices.shape[0], seed, index, batch_size)
    batch = np.asarray(slices[ids])
    if flips:
        batch = np.where(flip_h[:, None, None], batch[:, :, ::-1], batch)
        batch = np.where(flip_v[:, None, None], batch[:, ::-1, :], batch)
    return batch


def iterate_batches(slices: np.ndarray, seed: int, batch_size: int, start_index: int = 0,
                    prefetch: int = 2, flips: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """Endless ``(index, batch_at(...))`` pairs from ``start_index``, built ahead in a thread.

    Resuming is ``iterate_batches(..., start_index=saved_index)``. ``prefetch=0``
    builds batches in the calling thread.
    """
    chex.assert_rank(slices, 3)
    batches_per_epoch(slices.shape[0], batch_size)  # validate before any thread starts
    make = functools.partial(batch_at, slices, seed, batch_size=batch_size, flips=flips)
    if prefetch <= 0:
        index = start_index
        while True:
            yield index, make(index=index)
            index += 1
    buffer: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce():
        index = start_index
        while not stop.is_set():
            item = (index, make(index=index))
            while not stop.is_set():
                try:
                    buffer.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            index += 1

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            yield buffer.get()
    finally:
        stop.set()
