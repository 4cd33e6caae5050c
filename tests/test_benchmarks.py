"""Every benchmark script runs at a tiny size (benchmarks are not timed tests: nothing here checks a time)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testdata import ROOT

TINY = {
    "pipeline_bench.py": ["128"],
    "measure_bench.py": ["128"],
    "filters_bench.py": ["128"],
    "replacements_bench.py": ["128"],
    "page_bench.py": ["128"],
    "quality.py": ["--quick"],
    "batch_bench.py": ["--side", "256", "--images", "4", "--memory", "2,4"],
    "compare_bench.py": ["128"],
    "cluster_bench.py": ["--images", "3", "--side", "256", "--tiny", "3", "--workers", "1"],
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(script):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *TINY[script]], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "recipe" in proc.stdout or "F1" in proc.stdout, proc.stdout[-2000:]


def test_every_benchmark_script_is_run_here():
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"synthetic.py"}
    assert scripts - set(TINY) <= {"browser_bench.py"}
