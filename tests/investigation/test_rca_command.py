"""`manage.py rca CASE_DIR [--json]` on a case directory and on malformed ones."""
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from investigation.rca import CaseError, load_case

ROOT = Path(__file__).resolve().parents[2]
EDGES = [["frontend", "checkout"], ["checkout", "payment"]]


def write_case(path: Path, *, faulty="payment", step=10, n=240) -> Path:
    rng = np.random.default_rng(1)
    path.mkdir(parents=True, exist_ok=True)
    t = 1_700_000_000 + step * np.arange(n)
    start = t[150]
    on = t >= start
    err = {"payment": 0.002 + 0.3 * on, "checkout": 0.002 + 0.25 * on, "frontend": 0.002 + 0.2 * on}
    with open(path / "metrics.csv", "w") as f:
        f.write("time," + ",".join(f"{s}_{m}" for s in err for m in ("error-ratio", "latency-p95")) + "\n")
        for i, ts in enumerate(t):
            cells = []
            for s in err:
                cells += [f"{err[s][i] + abs(rng.normal(0, 0.002)):.5f}", f"{100 + rng.normal(0, 5):.2f}"]
            if i == 7:
                cells[1] = ""  # a missing value
            f.write(f"{ts}," + ",".join(cells) + "\n")
    (path / "inject_time.txt").write_text(f"{start + 60}\n")
    (path / "topology.json").write_text(json.dumps({"services": list(err), "edges": EDGES}))
    (path / "logs.jsonl").write_text(json.dumps({"time": float(start), "service": faulty, "line": "boom"}) + "\n")
    return path


def test_json_ranking(tmp_path):
    case = write_case(tmp_path / "case")
    out = StringIO()
    call_command("rca", str(case), "--json", stdout=out)
    ranking = json.loads(out.getvalue())["ranking"]
    assert [r["service"] for r in ranking][0] == "payment"
    assert sorted(r["service"] for r in ranking) == ["checkout", "frontend", "payment"]
    assert all(isinstance(r["score"], float) for r in ranking)


def test_readable_table(tmp_path):
    out = StringIO()
    call_command("rca", str(write_case(tmp_path / "case")), stdout=out)
    lines = out.getvalue().splitlines()
    assert "service" in lines[0] and "payment" in lines[1]
    assert "explained by" in out.getvalue()


def test_rcaeval_layout_data_csv_without_topology(tmp_path):
    case = write_case(tmp_path / "case")
    (case / "metrics.csv").rename(case / "data.csv")
    (case / "topology.json").unlink()
    loaded = load_case(case)
    assert set(loaded.services) == {"frontend", "checkout", "payment"} and loaded.edges == []


def break_metrics_header(case):
    (case / "metrics.csv").write_text("when,a_b\n1,2\n2,3\n")


def break_metrics_cell(case):
    lines = (case / "metrics.csv").read_text().splitlines()
    time, _, rest = lines[5].partition(",")
    lines[5] = time + ",abc," + rest.partition(",")[2]
    (case / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("breakage, message", [
    (lambda c: (c / "metrics.csv").unlink(), "metrics.csv: missing"),
    (break_metrics_header, "metrics.csv line 1: bad header"),
    (lambda c: (c / "metrics.csv").write_text("time,payment_cpu,payment\n1,2,3\n"), "metrics.csv line 1: bad header"),
    (break_metrics_cell, "metrics.csv line 6: column 'payment_error-ratio' value 'abc' is not a number"),
    (lambda c: (c / "inject_time.txt").unlink(), "inject_time.txt: missing"),
    (lambda c: (c / "inject_time.txt").write_text("yesterday\n"), "inject_time.txt line 1"),
    (lambda c: (c / "topology.json").write_text('{"edges": [["a"]]}'), "topology.json"),
    (lambda c: (c / "topology.json").write_text('{"edges": ['), "topology.json line 1: invalid JSON"),
    (lambda c: (c / "logs.jsonl").write_text('{"time": 1, "service": "a", "line": "x"}\n{oops\n'),
     "logs.jsonl line 2: invalid JSON"),
])
def test_malformed_case_is_one_clear_error(tmp_path, breakage, message):
    case = write_case(tmp_path / "case")
    breakage(case)
    with pytest.raises(CaseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_case(case)
    with pytest.raises(CommandError, match="^" + message.split(" ")[0]):
        call_command("rca", str(case), "--json", stdout=StringIO())


def test_command_line_exit_status_and_one_stderr_line(tmp_path):
    case = write_case(tmp_path / "case")
    (case / "logs.jsonl").write_text('{"time": 1, "service": "a", "line": "x"}\nnot json\n')
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "reliability_studio.settings.test"}
    env.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnop")
    proc = subprocess.run([sys.executable, str(ROOT / "manage.py"), "rca", str(case), "--json"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["CommandError: logs.jsonl line 2: invalid JSON (Expecting value)"]


def test_bench_scores_several_suites_with_and_without_topology(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    import rca as bench  # noqa: E402

    for suite in ("real", "other"):
        for i in range(2):
            case = write_case(tmp_path / suite / f"case-{i}")
            (case / "truth.json").write_text(json.dumps({"service": "payment", "fault": "error"}))
    assert bench.main(["--data", str(tmp_path / "real"), "--data", str(tmp_path / "other"),
                       "--without-topology", "--jobs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    last = json.loads(out[-1])
    assert set(last["suites"]) == {"real", "real no topology", "other", "other no topology"}
    assert last["cases"] == 8 and all(s["n"] == 2 and "ece" in s for s in last["suites"].values())
    assert any(line.startswith("real no topology") for line in out)
