"""``data.source="folder"``: training planes streamed from many volumes with `grain`.

``data.path`` is a folder, a glob or a list file of NIfTI files and DICOM series folders
(`iscs_jax.data.volumes`). Each volume is read by `iscs_jax.io.read_volume`, reoriented to
``data.orientation`` when `iscs_jax.orientation` is installed, and prepared as the sampling
CLI prepares its input (`iscs_jax.data.prepare.prepare_volume` with the window of
``data.intensity`` / ``hu_min`` / ``hu_max``): a ``[N, R, R]`` stack of planes in [0, 1].

* **Split by volume** (`split_volumes`): ``data.val_paths`` (and optionally ``train_paths``)
  name the validation (training) volumes; otherwise ``round(val_fraction * V)`` volumes drawn
  from ``data.seed`` are held out. The split and each volume's plane count are recorded in
  ``workdir/split.json``; a resumed run with another split is an error.
* **Order** (`epoch_order`): each epoch permutes the volumes, cuts them into groups of
  ``data.mix_volumes`` and shuffles the planes within each group, so consecutive batches
  touch few volumes. Example ``i`` of batch ``k`` is position ``k * B + i`` of the endless
  sequence of epochs: batch k is a pure function of ``(seed, k)``, and a resumed run is
  bit-exact.
* **Augmentation** on the fly (`augment_example`): the transforms of
  `iscs_jax.data.augment` (rotation, zoom, shift, z blend with the next plane, gain) and the
  flips, drawn from ``numpy.random.default_rng([seed, step, i])``.
* **Memory**: prepared volumes live in a bounded LRU cache (`VolumeCache`,
  ``data.cache_volumes``; keep it >= 2 x ``mix_volumes`` so a batch spanning two groups reads
  nothing twice); grain's prefetch holds a few batches. Nothing scales with the dataset but
  the ``[planes, 2]`` order of one epoch.
* **Hosts**: each process builds only the rows of every global batch that its devices hold
  (`local_rows`), and `global_batch` assembles them with
  ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import threading
from pathlib import Path
from typing import Iterator

import grain
import jax
import ml_collections
import numpy as np

from iscs_jax import checkpoint, io
from iscs_jax.data import augment, prepare, volumes
from iscs_jax.data.batches import batch_at

#: Axis codes of the shipped chest slab (`iscs_jax/data/assets/chest_ct_69-132.nii.gz`) as
#: `iscs_jax.io.read_nifti` reads it: the default ``data.orientation``.
DEFAULT_ORIENTATION = "LAS"


@dataclasses.dataclass(frozen=True)
class Preparation:
    """How a volume becomes training planes (`read_planes`).

    Attributes:
      resolution: image size R.
      plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
      window, window_range, floor: `prepare.intensity_window` of ``data.intensity``.
      orientation: axis codes to reorient to (e.g. ``"LAS"``), or ``""`` to keep the file's.
    """
    resolution: int
    plane: str = "axial"
    window: str = "range"
    window_range: tuple[float, float] = prepare.CT_HU_RANGE
    floor: float | None = prepare.AIR_HU
    orientation: str = DEFAULT_ORIENTATION


def preparation(data: ml_collections.ConfigDict) -> Preparation:
    """The `Preparation` of a ``data`` config section."""
    window, window_range, floor = prepare.intensity_window(
        data.get("intensity", "hu"), data.get("hu_min", prepare.CT_HU_RANGE[0]),
        data.get("hu_max", prepare.CT_HU_RANGE[1]))
    return Preparation(int(data.resolution), data.get("plane", "axial"), window,
                       tuple(window_range), floor, data.get("orientation", DEFAULT_ORIENTATION))


def reorient(volume: np.ndarray, affine: np.ndarray, codes: str):
    """``iscs_jax.orientation.reorient`` when that module exists (else unchanged)."""
    try:
        from iscs_jax import orientation
    except ImportError:
        return volume, affine
    return orientation.reorient(volume, affine, codes)


def read_planes(path: str | os.PathLike, prep: Preparation) -> np.ndarray:
    """Reads one volume and prepares it: float32 ``[N, R, R]`` in [0, 1].

    Raises:
      io.VolumeError: the volume cannot be read or is constant after the window (the path
        named).
    """
    try:
        volume, affine = io.read_volume(path)
        if prep.orientation:
            volume, affine = reorient(volume, affine, prep.orientation)
        planes, _ = prepare.prepare_volume(
            volume, affine, resolution=prep.resolution, plane=prep.plane, window=prep.window,
            window_range=prep.window_range, floor=prep.floor)
    except ValueError as err:
        raise io.VolumeError(f"Training volume {str(path)!r}: {err}") from err
    return np.ascontiguousarray(planes, np.float32)


class VolumeCache:
    """A thread-safe LRU cache of prepared volumes ``[N, R, R]``, at most ``size`` held.

    Attributes:
      loads: how many times a volume was read (a test's and a benchmark's measure).
    """

    def __init__(self, paths: list[str], prep: Preparation, size: int):
        if size < 1:
            raise ValueError(f"data.cache_volumes={size} must be >= 1 (prepared volumes held "
                             "in memory; >= 2 x data.mix_volumes avoids rereading).")
        self.paths, self.prep, self.size = list(paths), prep, int(size)
        self.loads = 0
        self._held: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int) -> np.ndarray:
        """The prepared planes of volume ``index`` (read on a miss, oldest evicted)."""
        with self._lock:  # one reader at a time: a volume is never read twice at once
            if index in self._held:
                self._held.move_to_end(index)
                return self._held[index]
            planes = read_planes(self.paths[index], self.prep)
            planes.setflags(write=False)
            self.loads += 1
            self._held[index] = planes
            while len(self._held) > self.size:
                self._held.popitem(last=False)
            return planes


def split_volumes(data: ml_collections.ConfigDict) -> dict[str, list[tuple[str, Path]]]:
    """``{"train": [(name, path)], "val": [...]}`` by volume (see the module docstring).

    Raises:
      io.VolumeError: bad paths, overlapping lists, or no training volume left.
    """
    val_paths, train_paths = data.get("val_paths", ""), data.get("train_paths", "")
    if val_paths:
        val = volumes.find_volumes(val_paths, "data.val_paths")
        train = (volumes.find_volumes(train_paths, "data.train_paths") if train_paths
                 else volumes.find_volumes(data.path))
        held = {p.resolve() for _, p in val}
        if train_paths and held & {p.resolve() for _, p in train}:
            raise io.VolumeError("data.train_paths and data.val_paths share volumes; a volume "
                                 "is either trained on or held out.")
        train = [(n, p) for n, p in train if p.resolve() not in held]
    else:
        everything = volumes.find_volumes(train_paths or data.path,
                                          "data.train_paths" if train_paths else "data.path")
        fraction = float(data.get("val_fraction", 0.0))
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"data.val_fraction={fraction} must be in [0, 1).")
        count = int(round(fraction * len(everything)))
        count = max(count, 1) if fraction > 0 and len(everything) > 1 else count
        order = np.random.default_rng([int(data.seed), 6]).permutation(len(everything))
        held_out = set(order[:count].tolist())
        val = [v for i, v in enumerate(everything) if i in held_out]
        train = [v for i, v in enumerate(everything) if i not in held_out]
    if not train:
        raise io.VolumeError(f"No training volume is left after holding out {len(val)} for "
                             "validation; add volumes to data.path or lower data.val_fraction.")
    return {"train": train, "val": val}


def record_split(split: dict, counts: list[int], workdir: str, write: bool) -> None:
    """Writes ``workdir/split.json`` (when ``write``), or checks a resumed run's split.

    Raises:
      checkpoint.CheckpointError: the workdir's run used other volumes.
    """
    record = {part: [{"name": n, "path": str(Path(p).resolve())} for n, p in split[part]]
              for part in ("train", "val")}
    for entry, count in zip(record["train"], counts):
        entry["planes"] = int(count)
    path = os.path.join(workdir, "split.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved != record:
            raise checkpoint.CheckpointError(
                f"{workdir} holds a run trained on another split of volumes (see {path}); "
                "its batches would differ. Use a new --workdir, or the same volumes to resume.")
    elif write:
        os.makedirs(workdir, exist_ok=True)
        with open(path, "w") as f:
            json.dump(record, f, indent=2)


@functools.lru_cache(maxsize=2)
def epoch_order(counts: tuple[int, ...], seed: int, epoch: int, mix: int) -> np.ndarray:
    """The ``(volume, plane)`` pairs ``[sum(counts), 2]`` epoch ``epoch`` visits, in order.

    The volumes are permuted, cut into groups of ``mix`` and the planes of each group
    shuffled, all from ``(seed, epoch)``.
    """
    rng = np.random.default_rng([int(seed), 7, int(epoch)])
    order = rng.permutation(len(counts))
    parts = []
    for start in range(0, len(order), max(int(mix), 1)):
        pairs = np.concatenate([np.stack([np.full(counts[v], v), np.arange(counts[v])], 1)
                                for v in order[start:start + mix]])
        parts.append(pairs[rng.permutation(len(pairs))])
    result = np.concatenate(parts).astype(np.int64)
    result.setflags(write=False)
    return result


def locate(counts: tuple[int, ...], seed: int, mix: int, position: int) -> tuple[int, int]:
    """``(volume, plane)`` of position ``position`` of the endless sequence of epochs."""
    epoch, offset = divmod(int(position), sum(counts))
    volume, plane = epoch_order(counts, seed, epoch, mix)[offset]
    return int(volume), int(plane)


def augment_example(planes: np.ndarray, plane: int, aug: augment.Augmentation, flips: bool,
                    rng: np.random.Generator) -> np.ndarray:
    """One augmented image ``[R, R]`` of plane ``plane`` of ``planes [N, R, R]``.

    The draws of `augment.augment_slices` for one copy (z blend with the next plane, then
    rotation, zoom, shift and gain, clipped to [0, 1]), then horizontal / vertical flips.
    """
    image = planes[plane]
    u = rng.uniform(-1.0, 1.0, size=5)
    if plane + 1 < planes.shape[0] and rng.random() < aug.z_blend:
        t = rng.random()
        image = (1 - t) * image + t * planes[plane + 1]
    if aug.rotation_degrees or aug.zoom or aug.shift:
        size = image.shape
        shift = (u[2] * aug.shift * size[0], u[3] * aug.shift * size[1])
        image = augment.affine_warp(image, u[0] * aug.rotation_degrees, 1 + u[1] * aug.zoom,
                                    shift)
    image = np.clip(image * (1 + u[4] * aug.gain), 0.0, 1.0)
    if flips:
        flip_h, flip_v = rng.random(2) < 0.5
        image = image[:, ::-1] if flip_h else image
        image = image[::-1, :] if flip_v else image
    return np.ascontiguousarray(image, np.float32)


def augmentation(data: ml_collections.ConfigDict) -> augment.Augmentation:
    """`augment.Augmentation` of ``data.augment`` (``copies`` has no meaning on the fly)."""
    fields = {k: v for k, v in data.get("augment", ml_collections.ConfigDict()).items()
              if k != "copies"}
    return augment.Augmentation(**fields)


class FolderSource:
    """The training examples of ``data.source="folder"`` and the validation planes.

    Args:
      data: the ``data`` config section (module docstring).
      batch_size: the global batch B.
      workdir: where ``split.json`` is recorded; write: whether this process writes it.
    """

    def __init__(self, data: ml_collections.ConfigDict, batch_size: int, workdir: str,
                 write: bool = True):
        self.prep = preparation(data)
        self.split = split_volumes(data)
        self.seed, self.mix = int(data.seed), int(data.get("mix_volumes", 2))
        self.flips, self.aug = bool(data.get("flips", False)), augmentation(data)
        self.batch_size = int(batch_size)
        self.cache = VolumeCache([str(p) for _, p in self.split["train"]], self.prep,
                                 int(data.get("cache_volumes", 4)))
        self.counts = self._plane_counts(workdir)
        record_split(self.split, list(self.counts), workdir, write)
        self.threads = int(data.get("loader_threads", 2))
        self.prefetch = int(data.get("prefetch_batches", 2))
        self.val_planes = int(data.get("val_planes", 8))

    def _plane_counts(self, workdir: str) -> tuple[int, ...]:
        """Planes per training volume: from ``split.json`` when it records these volumes,
        else by reading each volume once (through the cache)."""
        path = os.path.join(workdir, "split.json")
        names = [str(Path(p).resolve()) for _, p in self.split["train"]]
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)["train"]
            if [e["path"] for e in saved] == names:
                return tuple(int(e["planes"]) for e in saved)
        return tuple(self.cache.get(i).shape[0] for i in range(len(names)))

    def example(self, step: int, row: int) -> np.ndarray:
        """Row ``row`` of global batch ``step``: an augmented image ``[R, R]``."""
        volume, plane = locate(self.counts, self.seed, self.mix, step * self.batch_size + row)
        rng = np.random.default_rng([self.seed, int(step), int(row)])
        return augment_example(self.cache.get(volume), plane, self.aug, self.flips, rng)

    def batches(self, rows: list[int], start: int, stop: int) -> Iterator[np.ndarray]:
        """This process's rows ``[len(rows), R, R]`` of the global batches ``start .. stop -
        1``, built ahead by grain's threads."""
        local = len(rows)
        dataset = (grain.MapDataset.range(start * local, stop * local)
                   .map(lambda q: self.example(q // local, rows[q % local]))
                   .batch(local, drop_remainder=True))
        options = grain.ReadOptions(num_threads=max(self.threads, 1),
                                    prefetch_buffer_size=max(self.prefetch, 1) * local)
        return iter(dataset.to_iter_dataset(options))

    def validation(self) -> np.ndarray | None:
        """``val_planes`` fixed planes ``[K, R, R]`` spread evenly over the validation volumes
        (unaugmented), or None without validation volumes."""
        if not self.split["val"] or self.val_planes < 1:
            return None
        stacks = [read_planes(p, self.prep) for _, p in self.split["val"]]
        total = sum(s.shape[0] for s in stacks)
        picks = np.linspace(0, total - 1, min(self.val_planes, total)).round().astype(int)
        flat = np.concatenate(stacks)
        return np.ascontiguousarray(flat[picks])


def local_rows(sharding: jax.sharding.Sharding, batch_size: int) -> list[int]:
    """The rows of a ``[B, ...]`` global batch held by this process's devices, ascending."""
    shape = (batch_size,)
    indices = sharding.addressable_devices_indices_map(shape).values()
    return sorted({r for index in indices for r in range(*index[0].indices(batch_size))})


def global_batch(local: np.ndarray, sharding: jax.sharding.Sharding,
                 batch_size: int) -> jax.Array:
    """The global ``[B, R, R]`` array of every process's `local_rows` ``local``."""
    return jax.make_array_from_process_local_data(sharding, local,
                                                  (batch_size, *local.shape[1:]))


def training_data(config: ml_collections.ConfigDict, workdir: str, mesh,
                  slices: np.ndarray | None = None, write: bool = True):
    """The batches and validation planes of ``config.data``, for the trainer.

    Args:
      config: the training config; ``data.source`` ``"folder"`` streams `FolderSource`, any
        other source (`train.data.SOURCES`) is held in memory.
      workdir: where a folder source records ``split.json``; write: whether this process
        writes it (process 0).
      mesh: the training mesh (the batch is sharded over its one axis).
      slices: in-memory training images ``[N, H, W]`` instead of ``data.source``.

    Returns:
      ``(batches, validation)``: ``batches(start, stop)`` iterates the global batches
      ``[B, R, R]`` (`global_batch`) of steps ``start .. stop - 1``; ``validation`` the fixed
      validation planes ``[K, R, R]``, or None.
    """
    from . import data

    size = int(config.train.batch_size)
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
    rows = local_rows(sharding, size)
    if slices is None and config.data.get("source", "phantom") == "folder":
        source = FolderSource(config.data, size, workdir, write)

        def batches(start, stop):
            return (global_batch(local, sharding, size)
                    for local in source.batches(rows, start, stop))
        return batches, source.validation()
    slices = data.load_slices(config) if slices is None else slices

    def batches(start, stop):
        for step in range(start, stop):
            batch = batch_at(slices, config.data.seed, step, size,
                             flips=config.data.get("flips", True))
            yield global_batch(np.asarray(batch)[rows], sharding, size)
    return batches, None
