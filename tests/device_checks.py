"""Runs a multi-device check script of this folder in a subprocess and returns its JSON report.

The scripts set ``XLA_FLAGS`` (fake CPU device count) themselves before importing JAX, which
a process that has already imported JAX cannot do; each prints one JSON dict on the last line
of its stdout.
"""

import json
import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent


def run_check(script: str, *args: str, timeout: int = 600) -> dict:
    """``python tests/<script> *args`` with the repository importable; its JSON report."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                    "")])}
    env.pop("XLA_FLAGS", None)  # the script sets its own before importing jax
    proc = subprocess.run([sys.executable, str(TESTS / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
