"""benchmarks/accelerator.py: the ``--tiny`` run on two fake CPU devices, and its table."""

import json
import math
import sys
import time
from pathlib import Path

import pytest

from device_checks import run_python

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "accelerator.py"
SECTIONS = ("devices", "dds", "scaling", "ncsnpp", "cone_beam")


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """``(completed process, JSON document)`` of ``accelerator.py --tiny`` on 2 CPU devices."""
    out = tmp_path_factory.mktemp("accelerator") / "accelerator.json"
    proc = run_python(str(SCRIPT), "--tiny", "--repeats", "1", "--json", str(out), devices=2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.slow  # the --tiny run: ~25 s
def test_every_section_ran(tiny_run):
    _, doc = tiny_run
    sections = doc["sections"]
    assert doc["tiny"] is True
    assert set(sections) == set(SECTIONS)
    for name in SECTIONS:
        assert sections[name]["status"] == "ok", (name, sections[name]["status"])
    assert sections["devices"]["platform"] == "cpu"
    assert sections["devices"]["count"] == 2


@pytest.mark.slow  # the --tiny run: ~25 s
def test_times_are_positive_and_finite(tiny_run):
    _, doc = tiny_run
    s = doc["sections"]
    times = [s["dds"]["seconds"], s["cone_beam"]["A_s"], s["cone_beam"]["AT_s"]]
    times += [row["seconds"] for row in s["ncsnpp"]["rows"] + s["scaling"]["rows"]]
    times += [row["s_per_slice"] for row in s["ncsnpp"]["rows"]]
    assert all(_positive_finite(t) for t in times), times
    compile_times = [s["dds"]["compile_s"], s["cone_beam"]["A_compile_s"]]
    assert all(math.isfinite(t) and t >= 0 for t in compile_times)
    assert {(r["dtype"], r["batch"]) for r in s["ncsnpp"]["rows"]} == {
        (d, b) for d in ("float32", "bfloat16") for b in (2, 4)}


@pytest.mark.slow  # the --tiny run: ~25 s
def test_reconstruction_and_device_rows(tiny_run):
    _, doc = tiny_run
    dds, scaling = doc["sections"]["dds"], doc["sections"]["scaling"]
    assert dds["finite"] is True and math.isfinite(dds["mean"])
    assert dds["devices"] == 2
    assert dds["peak_bytes"] is None  # CPU devices keep no memory statistics
    assert [row["devices"] for row in scaling["rows"]] == [1, 2]
    assert all(_positive_finite(row["slices_per_s"]) for row in scaling["rows"])
    assert doc["sections"]["cone_beam"]["finite"] is True


@pytest.mark.slow  # the --tiny run: ~25 s
def test_one_table_printed(tiny_run):
    proc, _ = tiny_run
    table = proc.stdout.split("\n\n")[-1]
    assert table.startswith("section")
    for label in ("devices", "DDS+ISCS", "denoise pass", "NCSN++ 32 f32", "NCSN++ 32 bf16",
                  "cone-beam A", "cone-beam AT", "peak n/a"):
        assert label in table, label


def test_failing_section_is_reported_and_others_run(monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    import accelerator

    def broken(sizes, repeats):
        raise RuntimeError("boom")

    monkeypatch.setitem(accelerator.RUNNERS, "cone_beam", broken)
    report = accelerator.Report(accelerator.TINY, None, start=time.perf_counter())
    accelerator.run_section("devices", report, 1, budget=100.0)
    accelerator.run_section("cone_beam", report, 1, budget=100.0)
    accelerator.run_section("ncsnpp", report, 1, budget=-1.0)  # past the time guard
    assert report.results["devices"]["status"] == "ok"
    assert report.results["cone_beam"]["status"] == "error: RuntimeError: boom"
    assert report.results["ncsnpp"]["status"].startswith("skipped: time guard")
    table = accelerator.format_table(report.results)
    assert "error: RuntimeError: boom" in table and "not run" in table
    assert accelerator.device_counts(1) == [1]
    assert accelerator.device_counts(6) == [1, 2, 4, 6]
