"""benchmarks/memory.py (the ``--tiny`` plan on two fake CPU devices), the chunk choice, and the
config keys it plans with: ``operator.view_chunk`` and ``cbct.py:paper``."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from device_checks import run_python
from iscs_jax import cli, operators
from sample import inputs
from sample.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "memory.py"


def _memory_module():
    spec = importlib.util.spec_from_file_location("memory_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    """``(stdout, JSON document)`` of ``memory.py --tiny`` (1 and 2 devices, chunks 2 and 4)."""
    out = tmp_path_factory.mktemp("memory") / "memory.json"
    proc = run_python(str(SCRIPT), "--tiny", "--json", str(out), devices=2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_tiny_plan_prints_positive_peaks_that_grow_with_the_chunk(tiny_plan):
    stdout, doc = tiny_plan
    assert doc["tiny"] is True and doc["fdk"] and doc["dds"]
    for row in doc["fdk"] + doc["dds"]:
        assert row["peak"] > 0 and row["temp"] > 0 and row["resident"] >= row["argument"] > 0
        assert row["peak"] == row["resident"] + row["output"] + row["temp"] - row["alias"]
    by_case = {}
    for row in doc["dds"]:
        by_case.setdefault((row["views"], row["devices"]), []).append((row["chunk"], row["peak"]))
    assert {devices for _, devices in by_case} == {1, 2}
    for case, rows in by_case.items():
        peaks = [peak for _, peak in sorted(rows)]
        assert len(peaks) >= 2 and all(a < b for a, b in zip(peaks, peaks[1:])), (case, rows)
    assert "largest chunk that fits" in stdout and "peak = resident + output + temp" in stdout


def test_largest_fitting_chunk_fits_every_view_count():
    memory = _memory_module()
    peak = lambda value: memory.Memory(1, value, 0, 0, 0, 0.0)  # noqa: E731
    rows = [dict(views=views, devices=1, chunk=chunk, memory=peak(chunk * views))
            for views in (20, 360) for chunk in (8, 16, 32)]
    assert memory.largest_fitting(rows, 1, budget=16 * 360) == 16
    assert memory.largest_fitting(rows, 1, budget=1e9) == 32
    assert memory.largest_fitting(rows, 1, budget=1e9, max_chunk=16) == 16  # no padding
    assert memory.largest_fitting(rows, 1, budget=32 * 20) is None  # 360 views never fit
    assert memory.largest_fitting(rows, 2, budget=1e9) is None  # no row for 2 devices


def test_view_chunk_is_a_config_key_that_reaches_the_operator():
    config = cli.load_config("cbct.py", "configs")[0]
    assert config.operator.view_chunk == 8
    config.operator.view_chunk = 3
    assert inputs.make_operator(config.operator, (4, 32, 32)).view_chunk == 3
    config.operator.kind = "fan_beam"
    assert inputs.make_operator(config.operator, (4, 32, 32)).view_chunk == 3
    assert "view_chunk" in operators.setting_names("cone_beam")
    config.operator.kind, config.operator.view_chunk = "cone_beam", 0
    with pytest.raises(UserError, match="operator.view_chunk=0"):
        inputs.make_operator(config.operator, (4, 32, 32))
    # Parallel beams take no view_chunk: the shared section's key is not passed to them.
    parallel = cli.load_config("ct.py", "configs")[0]
    assert isinstance(inputs.make_operator(parallel.operator, (4, 32, 32)),
                      operators.ParallelBeam)


def test_paper_preset_is_the_published_size_and_geometry():
    from configs import cbct

    config = cli.load_config("cbct.py:paper", "configs")[0]
    assert (config.data.slice_start, config.data.num_slices) == (0, 256)
    assert config.prior.name == "" and config.prior.path == ""  # the user's NCSN++ 256
    assert config.sampler.chunk_size == cbct.PAPER_CHUNK
    operator = inputs.make_operator(config.operator, (256, 256, 256))
    assert operator.num_views == 20 and operator.view_chunk == config.operator.view_chunk
    assert (operator.source_origin, operator.origin_detector) == (700.0, 500.0)
    assert operator.detector_shape == (512, 512) and operator.detector_spacing == (2.0, 2.0)
    smoke = cli.load_config("cbct.py:paper,smoke", "configs")[0]
    assert smoke.data.num_slices == 4 and smoke.operator.preset == "paper"
