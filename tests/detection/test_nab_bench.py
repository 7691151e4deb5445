"""bench/nab.py: the fixed split rule, the --detections-out format, --tune, bad input.

Runs on tests/fixtures/nab-mini (five tiny synthetic series in NAB's layout), never on the real
NAB copy outside the repository."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from detection.anomaly import default_detector

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "nab-mini"

_spec = importlib.util.spec_from_file_location("nab_bench", ROOT / "bench" / "nab.py")
nab_bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("nab_bench", nab_bench)
_spec.loader.exec_module(nab_bench)


def test_split_alternates_files_within_each_category_in_sorted_order():
    names = ["b/z.csv", "a/3.csv", "a/1.csv", "b/y.csv", "a/2.csv", "c/only.csv", "a/4.csv"]
    assert nab_bench.split_files(names) == {
        "a/1.csv": "tune", "a/2.csv": "test", "a/3.csv": "tune", "a/4.csv": "test",
        "b/y.csv": "tune", "b/z.csv": "test",
        "c/only.csv": "tune",
    }
    # the rule depends on names only: the input order does not matter
    assert nab_bench.split_files(sorted(names, reverse=True)) == nab_bench.split_files(names)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_run_writes_the_products_alarms_for_every_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert nab_bench.main(["--data", str(FIXTURE), "--detections-out", str(out), "--no-timing"]) == 0
    printed = capsys.readouterr().out
    result = last_json(printed)
    assert result["files"] == 5
    assert {"score_test", "score_all", "score_tune", "zscore_test", "zscore_all", "precision_all",
            "recall_all", "ms_per_10k_points"} <= set(result)
    assert "== tune half ==" in printed and "== test half ==" in printed and "== all files ==" in printed
    # the split of the fixture, as the rule says: a_spike, c_step, x_noisy tune; b_flat, y_step test
    for line, half in (("artificialA/a_spike.csv", "tune"), ("artificialA/b_flat.csv", "test"),
                       ("artificialA/c_step.csv", "tune"), ("realB/x_noisy.csv", "tune"),
                       ("realB/y_step.csv", "test")):
        assert any(row.startswith(line) and row.split()[1] == half for row in printed.splitlines()), line

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    data_files = sorted(p.relative_to(FIXTURE / "data").as_posix() for p in (FIXTURE / "data").rglob("*.csv"))
    assert written == data_files
    for rel in data_files:
        with open(FIXTURE / "data" / rel) as f:
            data = list(csv.reader(f))
        with open(out / rel) as f:
            alarms = list(csv.reader(f))
        assert alarms[0] == ["timestamp", "alarm"]
        assert [r[0] for r in alarms[1:]] == [r[0] for r in data[1:]]  # the data file's rows, in order
        assert {r[1] for r in alarms[1:]} <= {"0", "1"}
        t = np.array([r[0] for r in data[1:]], dtype="datetime64[s]").astype(np.int64).astype(float)
        v = np.array([float(r[1]) for r in data[1:]])
        expected = default_detector().detect(t, v).astype(int)
        assert [int(r[1]) for r in alarms[1:]] == expected.tolist(), rel
    # the spike and the steps are caught, the flat and the noisy series are left alone
    def alarm_rows(rel):
        with open(out / rel) as f:
            return [i for i, r in enumerate(list(csv.reader(f))[1:]) if r[1] == "1"]
    assert alarm_rows("artificialA/a_spike.csv") == [300]
    assert 280 <= alarm_rows("realB/y_step.csv")[0] <= 285
    assert alarm_rows("artificialA/b_flat.csv") == [] and alarm_rows("realB/x_noisy.csv") == []


def test_tune_chooses_from_the_grid_on_the_tuning_half_only(capsys):
    assert nab_bench.main(["--data", str(FIXTURE), "--tune"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["mode"] == "tune" and result["tune_files"] == 3
    assert result["grid_points"] == np.prod([len(v) for v in nab_bench.TUNE_GRID.values()])
    assert all(result["chosen"][k] in nab_bench.TUNE_GRID[k] for k in nab_bench.TUNE_GRID)


@pytest.mark.parametrize("breakage", ["no-folder", "bad-labels", "bad-value"])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, capsys, breakage):
    data = tmp_path / "nab"
    if breakage != "no-folder":
        (data / "data" / "c").mkdir(parents=True)
        (data / "labels").mkdir()
        (data / "data" / "c" / "f.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n"
                                                   + ("2020-01-01 00:05:00,oops\n" if breakage == "bad-value" else ""))
        (data / "labels" / "combined_windows.json").write_text("{" if breakage == "bad-labels" else '{"c/f.csv": []}')
    assert nab_bench.main(["--data", str(data), "--no-timing"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("nab.py: ")
    assert "error" in last_json(captured.out)
