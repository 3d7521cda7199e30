"""Executes notebooks/quickstart.ipynb on a tiny setting (nbclient) with the shipped prior."""

import importlib.util
import os
import re
import shutil
from pathlib import Path

import nbclient
import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
TINY = """NUM_SLICES = 4
NUM_VIEWS = 16
STEPS = 4
CG_ITERS = 5
PRIOR = 'phantom64'"""


def test_quickstart_notebook_runs_on_a_tiny_setting(monkeypatch):
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    first = notebook.cells[1].source
    assert "pip install" in first and "find_spec" in first  # guarded install cell
    index = next(i for i, c in enumerate(notebook.cells)
                 if "parameters" in c.get("metadata", {}).get("tags", []))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(TINY))  # papermill-style override
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # The install cell found the package importable (no download), and the runtime is reported.
    assert "iscs_jax is already importable: not installing" in text
    assert "backend: cpu | devices: [CpuDevice(id=0)" in text, text[:2000]
    assert "Note: running on the CPU" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.split()[:1] in (["FBP"], ["iid"], ["iscs"])}
    assert set(rows) == {"FBP", "iid", "iscs"}
    psnr = {name: float(row[1]) for name, row in rows.items()}
    # Even 4 steps of the learned prior, warm-started from FBP, clearly improve on FBP.
    assert psnr["iid"] > psnr["FBP"] + 2 and psnr["iscs"] > psnr["FBP"] + 2, psnr
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the orthogonal-view figure


def _install_cell(source, accelerator):
    """The install cell's Python (IPython syntax transformed) with its two settings replaced."""
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    cell = notebook.cells[1].source
    cell = re.sub(r"^ISCS_JAX_SOURCE = .*$", f"ISCS_JAX_SOURCE = {source!r}", cell, flags=re.M)
    cell = re.sub(r"^ACCELERATOR = .*$", f"ACCELERATOR = {accelerator!r}", cell, flags=re.M)
    return TransformerManager().transform_cell(cell)


def test_quickstart_install_cell_builds_the_requirement(monkeypatch, tmp_path):
    """Without the package importable, the first cell pip-installs iscs-jax with the jax extra from
    the package index, a URL or a local path (pip itself is not run)."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "iscs_jax" else find_spec(name, *a))
    url = "git+https://github.com/example/iscs-jax@v0.1.0"
    cases = [("iscs-jax", "cuda12", "iscs-jax[cuda12]"),
             ("iscs-jax", "", "iscs-jax"),
             (url, "tpu", f"iscs-jax[tpu] @ {url}"),
             (str(tmp_path), "", f"iscs-jax @ {tmp_path.as_uri()}")]
    for source, accelerator, expected in cases:
        magics = []
        namespace = {"get_ipython": lambda: type("Shell", (), {
            "run_line_magic": staticmethod(lambda name, line: magics.append((name, line)))})()}
        exec(_install_cell(source, accelerator), namespace)
        assert namespace["REQUIREMENT"] == expected
        assert magics == [("pip", 'install -q "{REQUIREMENT}"')]
        requirement = Requirement(expected)  # a valid PEP 508 requirement
        assert requirement.name == "iscs-jax" and requirement.extras == ({accelerator} - {""})
    # ACCELERATOR = None detects an NVIDIA GPU by its nvidia-smi.
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    namespace = {"get_ipython": lambda: type("Shell", (), {
        "run_line_magic": staticmethod(lambda name, line: None)})()}
    exec(_install_cell("iscs-jax", None), namespace)
    assert namespace["ACCELERATOR"] == "cuda12" and namespace["REQUIREMENT"] == "iscs-jax[cuda12]"
