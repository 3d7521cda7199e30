"""The folder source (`train.dataset`), its logs (`train.logs`) and volume discovery
(`iscs_jax.data.volumes`): split by volume, pure batches, bounded memory, exact resume after a
SIGKILL, TensorBoard events, and 2 processes x 2 devices = 1 process x 4 devices."""

import json
import struct
import subprocess
import sys

import jax
import numpy as np
import pytest

from device_checks import TESTS, _env, local_address, run_processes
from iscs_jax import checkpoint, io, parallel
from iscs_jax.data import volumes
from train import dataset
from train_folder_check import tiny_config

CHECK = str(TESTS / "train_folder_check.py")


def write_volumes(folder, count, shape=(6, 20, 16), first=0, suffix=".nii.gz"):
    """``count`` CT-like NIfTI volumes (air around a disc of varying HU) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    disc = (yy - shape[1] / 2) ** 2 + (xx - shape[2] / 2) ** 2 < (0.35 * min(shape[1:])) ** 2
    for i in range(first, first + count):
        levels = np.linspace(-200.0, 400.0, shape[0])[:, None, None] + 20.0 * i
        volume = np.where(disc, levels, -1000.0).astype(np.float32)
        io.write_nifti(folder / f"vol{i:02d}{suffix}", volume, np.diag([-1.0, 1.0, 2.0, 1.0]))
    return folder


def read_events(folder):
    """``{tag: [(step, value or None for images)]}`` of the TensorBoard event files in
    ``folder`` (TFRecord frames: length, crc, Event proto, crc)."""
    from tensorboardX.proto import event_pb2

    tags = {}
    for path in sorted(folder.iterdir()):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (size,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + size])
            i += 16 + size
            for value in event.summary.value:
                number = value.simple_value if value.HasField("simple_value") else None
                tags.setdefault(value.tag, []).append((event.step, number))
    return tags


def test_volumes_are_found_in_a_folder_a_glob_and_a_list_file(tmp_path):
    scans = write_volumes(tmp_path / "scans", 3)
    (scans / "notes.txt").write_text("not a volume list")  # a folder's text files are skipped
    expected = [(f"vol{i:02d}", scans / f"vol{i:02d}.nii.gz") for i in range(3)]
    assert volumes.find_volumes(str(scans)) == expected
    assert volumes.find_volumes(str(scans / "vol0[02].nii.gz")) == expected[::2]
    listing = tmp_path / "list.txt"
    listing.write_text("# training scans\nscans/vol02.nii.gz\n\n" + f"{scans / 'vol00.nii.gz'}\n")
    assert volumes.find_volumes(str(listing)) == [expected[2], expected[0]]  # the list's order
    assert volumes.find_volumes(str(expected[1][1])) == [expected[1]]  # one volume
    (tmp_path / "empty").mkdir()
    bad = {str(tmp_path / "nowhere"): "does not exist", str(tmp_path / "empty"): "a folder without",
           str(scans / "*.nii"): "matches 0 path", str(scans / "notes.txt"): "line 1: 'not a"}
    for path, message in bad.items():
        with pytest.raises(io.VolumeError, match=message):
            volumes.find_volumes(path)


def test_the_split_is_by_volume_recorded_and_checked_on_resume(tmp_path):
    scans = write_volumes(tmp_path / "scans", 8)
    config = tiny_config(str(scans))
    source = dataset.FolderSource(config.data, 4, str(tmp_path / "run"))
    train = {n for n, _ in source.split["train"]}
    val = {n for n, _ in source.split["val"]}
    assert len(val) == 2 and len(train) == 6 and not train & val  # round(0.25 * 8)
    saved = json.loads((tmp_path / "run" / "split.json").read_text())
    assert [e["name"] for e in saved["val"]] == sorted(val)
    assert [e["planes"] for e in saved["train"]] == [6] * 6
    assert source.validation().shape == (2, 16, 16)
    explicit = config.data.copy_and_resolve_references()
    explicit.val_paths = str(scans / "vol0[01].nii.gz")
    split = dataset.split_volumes(explicit)
    assert [n for n, _ in split["val"]] == ["vol00", "vol01"] and len(split["train"]) == 6
    with pytest.raises(checkpoint.CheckpointError, match="another split of volumes"):
        dataset.FolderSource(explicit, 4, str(tmp_path / "run"))
    explicit.train_paths = str(scans / "vol01.nii.gz")
    with pytest.raises(io.VolumeError, match="share volumes"):
        dataset.split_volumes(explicit)


def test_batches_are_a_pure_function_of_the_step_and_each_host_builds_its_rows(tmp_path):
    scans = write_volumes(tmp_path / "scans", 5)
    config = tiny_config(str(scans))
    config.data.update(val_fraction=0.0, flips=True, mix_volumes=2)
    small = dataset.FolderSource(config.data, 4, str(tmp_path / "a"))
    config.data.cache_volumes = 5
    large = dataset.FolderSource(config.data, 4, str(tmp_path / "b"))
    whole = np.stack(list(small.batches([0, 1, 2, 3], 0, 12)))  # 48 examples: 2 epochs
    assert whole.shape == (12, 4, 16, 16) and small.cache.size == 2
    np.testing.assert_array_equal(np.stack(list(large.batches([0, 1, 2, 3], 0, 12))), whole)
    np.testing.assert_array_equal(np.stack(list(small.batches([0, 1, 2, 3], 7, 12))), whole[7:])
    halves = [np.stack(list(large.batches(rows, 0, 12))) for rows in ([0, 1], [2, 3])]
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), whole)
    assert not np.array_equal(whole[0], whole[6])  # another epoch, other draws
    # Volumes are mixed 2 at a time: a batch reads few volumes, so the 2-volume cache rereads
    # each volume about once per epoch (5 counting reads + ~5 per epoch), not per batch.
    assert small.cache.loads <= 5 + 2 * 6


def _train(volumes_dir, workdir, cache, *extra):
    return [CHECK, str(volumes_dir), str(workdir), "--compilation_cache", str(cache), *extra]


def _report(done):
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Six tiny training processes, each 1 process x 4 (fake CPU) devices unless noted, sharing
    a compilation cache (most of a tiny run is compiling):

    round 1: ``killed`` on 16 volumes, SIGKILLed before step 13, next to ``two``: the 16
    volumes on 2 processes x 2 devices (``jax.distributed`` on localhost);
    round 2: ``w4`` on 4 of the volumes, ``w16`` on the 16, uninterrupted, and ``killed``
    resumed.

    The volumes are large enough that keeping the 16 read volumes would break the 1.3x memory
    bound: each is 64 x 256 x 256 (33.5 MB as the float64 nibabel reads), so 16 held would add
    ~540 MB to a process of ~1.3 GB. (Prepared planes at 16 x 16 are too small to tell.)
    """
    root = tmp_path_factory.mktemp("folder_runs")
    cache = root / "xla_cache"
    sixteen = write_volumes(root / "sixteen", 16, (64, 256, 256), suffix=".nii")
    four = root / "four"
    four.mkdir()
    for path in sorted(sixteen.iterdir())[:4]:
        (four / path.name).symlink_to(path)
    address = local_address()
    hosts = [_train(sixteen, root / "two", cache, "--coordinator", address,
                    "--num_processes", "2", "--process_id", str(i)) for i in range(2)]
    pair = [subprocess.Popen([sys.executable, *command], env=_env(2), cwd=TESTS.parent,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for command in hosts]
    killed = run_processes([_train(sixteen, root / "killed", cache, "--kill_at", "13")],
                           devices=4)[0]
    try:
        outputs = [proc.communicate(timeout=600) for proc in pair]
    finally:
        for proc in pair:  # one hung waiting for a peer that died: stop both
            if proc.poll() is None:
                proc.kill()
    pair = [subprocess.CompletedProcess(p.args, p.returncode, *o) for p, o in zip(pair, outputs)]
    # w4 and w16 side by side, in the same state of the cache: their memory compares fairly
    w4, w16, resumed = run_processes([_train(four, root / "w4", cache),
                                      _train(sixteen, root / "w16", cache),
                                      _train(sixteen, root / "killed", cache)], devices=4)
    return root, {"w4": w4, "killed": killed, "w16": w16, "resumed": resumed, "two": pair}


@pytest.mark.slow  # the six processes of `runs`: ~60 s
def test_memory_is_bounded_by_the_cache_not_the_number_of_volumes(runs):
    _, done = runs
    small, large = _report(done["w4"]), _report(done["w16"])
    print(f"peak RSS: 4 volumes {small['maxrss_mb']:.0f} MB, 16 volumes "
          f"{large['maxrss_mb']:.0f} MB")
    assert large["maxrss_mb"] <= 1.3 * small["maxrss_mb"], (large, small)


@pytest.mark.slow
def test_a_sigkilled_run_resumes_bit_identically_and_logs_each_step_once(runs):
    root, done = runs
    assert done["killed"].returncode == -9, done["killed"].stderr[-3000:]
    _report(done["resumed"])
    straight, resumed = np.load(root / "w16" / "params.npz"), np.load(
        root / "killed" / "params.npz")
    assert len(straight.files) > 10
    for name in straight.files:
        np.testing.assert_array_equal(resumed[name], straight[name])
    records = [json.loads(line) for line in
               (root / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]  # logged once each despite the kill
    assert [r["step"] for r in records if "val_loss" in r] == [10, 20]
    assert all(np.isfinite(r["val_loss"]) for r in records if "val_loss" in r)
    assert json.loads((root / "w16" / "split.json").read_text())["val"]  # 4 held out


@pytest.mark.slow
def test_validation_loss_and_images_go_to_tensorboard(runs):
    root, done = runs
    _report(done["w16"])
    records = [json.loads(line) for line in
               (root / "w16" / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["val_loss"] for r in records if "val_loss" in r}
    events = read_events(root / "w16" / "tensorboard")
    assert [s for s, _ in events["val/loss"]] == [10, 20]
    np.testing.assert_allclose([v for _, v in events["val/loss"]], [logged[10], logged[20]],
                               rtol=1e-6)
    resumed = [json.loads(line) for line in
               (root / "killed" / "metrics.jsonl").read_text().splitlines()]
    for record in resumed:  # deterministic validation: the same numbers after the kill
        if "val_loss" in record:
            assert record["val_loss"] == logged[record["step"]]
    assert [s for s, _ in events["train/loss"]] == [5, 10, 15, 20]
    assert events["samples/clean_noisy_denoised"][0][0] == 20


@pytest.mark.slow
def test_two_processes_of_two_devices_train_as_one_process_of_four(runs):
    root, done = runs
    one, reports = _report(done["w16"]), [_report(d) for d in done["two"]]
    assert one["devices"] == 4 and [r["process"] for r in reports] == [0, 1]
    assert all(r["devices"] == 4 for r in reports)
    a, b = np.load(root / "w16" / "params.npz"), np.load(root / "two" / "params.npz")
    diff = np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in a.files))
    norm = np.sqrt(sum(np.sum(a[k] ** 2) for k in a.files))
    print(f"2 x 2 vs 1 x 4 devices: relative L2 difference {diff / norm:.2e}")
    assert diff <= 1e-5 * norm, diff / norm
    # one copy of the logs: every step once, one event file, the split and config once
    steps = [json.loads(line)["step"] for line in
             (root / "two" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]
    assert len(list((root / "two" / "tensorboard").iterdir())) == 1
    assert (root / "two" / "split.json").exists() and (root / "two" / "config.json").exists()


def test_local_rows_are_the_rows_of_this_process_devices():
    mesh = parallel.make_mesh(1, "batch")
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    assert dataset.local_rows(sharding, 4) == [0, 1, 2, 3]
    batch = dataset.global_batch(np.arange(32, dtype=np.float32).reshape(4, 2, 4), sharding, 4)
    assert batch.shape == (4, 2, 4) and float(batch[3, 1, 3]) == 31.0


def test_the_cli_names_a_bad_data_path_and_writes_nothing(tmp_path, capsys):
    from train.__main__ import main

    for path, message in (("", "data.path is empty"), (str(tmp_path / "no"), "does not exist")):
        argv = ["--config", "train_folder.py:smoke", f"--config.data.path={path}",
                "--workdir", str(tmp_path / "work")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "work").exists()
