"""Damaged checkpoints: the training CLI sets them aside and finishes (issue 21 item 6).

One tiny run through ``train.__main__.main`` (in-process) to the end, then two damages at
once: a file deleted inside the newest step and the temporary directory of a save killed
half-way. Re-running the same command must exit 0, name both, move them (never delete) into
``checkpoints/damaged/`` and finish with a readable newest step.
"""

import shutil

import train.__main__ as train_main
from iscs_jax import checkpoint

TINY = ["--config=train_phantom.py:smoke", "--config.data.resolution=16",
        "--config.model.base_width=4", "--config.model.channel_mults=(1, 2)",
        "--config.model.attention_resolutions=(8,)", "--config.model.norm_groups=2",
        "--config.model.embedding_dim=8", "--config.train.num_steps=6",
        "--config.train.warmup_steps=1", "--config.train.learning_rate=1e-2",
        "--config.train.log_every=3",
        "--config.checkpoint.every=3"]


def steps(folder):
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def test_rerun_after_damage_sets_aside_and_finishes(tmp_path, capsys):
    workdir = tmp_path / "work"
    argv = [*TINY, f"--workdir={workdir}"]
    assert train_main.main(argv) == 0
    ckpt = workdir / "checkpoints"
    assert steps(ckpt) == [3, 6]
    partial = ckpt / f"9{checkpoint.TMP_SUFFIX}-1764880000"  # what a kill during a save leaves
    shutil.copytree(ckpt / "6", partial)
    next(p for p in partial.rglob("*") if p.is_file()).unlink()
    (ckpt / "6" / "default" / "_METADATA").unlink()
    capsys.readouterr()

    assert train_main.main(argv) == 0
    out = capsys.readouterr().out
    moved = sorted(p.name for p in (ckpt / checkpoint.DAMAGED).iterdir())
    assert len(moved) == 2 and moved[0].startswith("6-"), moved
    assert moved[1].startswith(f"9{checkpoint.TMP_SUFFIX}-1764880000-"), moved
    assert "Set aside checkpoint 6 (unreadable: " in out and moved[0] in out
    assert "left half-written by an interrupted save" in out and moved[1] in out
    assert "Resumed from checkpoint step 3" in out
    assert (ckpt / checkpoint.DAMAGED / moved[0] / "default").is_dir()  # moved, not deleted
    assert steps(ckpt) == [3, 6] and not list(ckpt.glob(f"*{checkpoint.TMP_SUFFIX}*"))

    assert train_main.main(argv) == 0  # step 6, saved again, is readable: nothing more moved
    assert "Resumed from checkpoint step 6" in capsys.readouterr().out
    assert len(list((ckpt / checkpoint.DAMAGED).iterdir())) == 2
