"""benchmarks/cpu.py in its tiny mode, so the CPU-per-event harness cannot rot.

Only the table's shape is checked: speed is measured by the benchmark, never asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def test_cpu_benchmark_prints_a_row_per_scene_with_ratios_to_the_stock_receiver():
    done = subprocess.run(
        [sys.executable, "benchmarks/cpu.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert lines[0] == "| scene photo | stock receiver | core | all |", done.stdout
    assert lines[1] == "|---|---:|---:|---:|"
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert set(rows) == {"1080p", "640x480"}, done.stdout
    cell = re.compile(r"^\d+\.\d ms \(\d+\.\d×\)$")
    for row in rows.values():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.match(r"^\d+\.\d ms$", cells[1]), row
        assert all(cell.match(c) for c in cells[2:]), row
    # What creating a file cost where it ran: snapshots' photos depend on it.
    assert re.search(r"^Creating a file in .* cost \d+ µs of CPU", done.stdout, re.M), done.stdout


def test_repeated_rounds_print_the_median_and_the_range_of_the_ratios():
    done = subprocess.run(
        [sys.executable, "benchmarks/cpu.py", "--smoke", "--only", "all", "--repeat", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 round(s)" in done.stdout, done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1080p")]
    assert len(rows) == 1, done.stdout
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    found = re.match(r"^\d+\.\d ms \((\d+\.\d)×, (\d+\.\d)–(\d+\.\d)×\)$", cells[2])
    assert found, rows[0]
    median, low, high = found.groups()
    assert float(low) <= float(median) <= float(high), rows[0]
