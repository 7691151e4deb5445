"""In CI a skipped test fails (tests/ci.py): run a tiny suite with CI set and unset and compare."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = '''
import pytest

def test_runs():
    pass

def test_skips_in_the_test():
    pytest.skip("frobnicator is not installed")

@pytest.mark.skipif(True, reason="quux is not installed")
def test_skipif_mark():
    pass

def test_importorskip():
    pytest.importorskip("a_module_that_does_not_exist_here")

@pytest.fixture
def tool():
    pytest.skip("the tool is not installed")

def test_fixture_skips(tool):
    pass

@pytest.mark.xfail(reason="a known bug")
def test_known_bug():
    assert False
'''
MODULE_SKIP = '''
import pytest
pytest.skip("the whole module needs zork", allow_module_level=True)
'''


def run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_tiny.py").write_text(SUITE)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci", "-p", "no:django", "-p", "no:cacheprovider",
         # A module skipped in CI is a collection error, which stops the run: go on, to see the rest.
         "-rA", "--continue-on-collection-errors", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_outside_ci_a_missing_tool_skips(tmp_path, ci):
    result = run(tmp_path, ci)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 5 skipped, 1 xfailed" in result.stdout, result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_every_skip_fails_with_its_reason(tmp_path, ci):
    result = run(tmp_path, ci)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "skipped" not in out.splitlines()[-1], out  # the summary line: no skip left
    # Skips in a test fail it; skips in setup (a skipif mark, a fixture) and at collection are errors.
    assert "1 passed" in out and "1 xfailed" in out and "2 failed" in out and "3 errors" in out, out
    for reason in ("frobnicator is not installed", "quux is not installed", "a_module_that_does_not_exist_here",
                   "the tool is not installed", "the whole module needs zork"):
        assert f"skipped in CI (CI={ci!r}): " in out and reason in out, (reason, out)


def test_require_binary_finds_a_present_binary_and_skips_on_a_missing_one():
    from tests.ci import require_binary

    assert require_binary("sh").endswith("/sh")
    with pytest.raises(pytest.skip.Exception, match="no-such-binary-here is not installed: apt-get install it"):
        require_binary("no-such-binary-here", "apt-get install it")


def test_ci_run_sets_ci():
    assert 'export CI="${CI:-true}"' in (ROOT / ".ci" / "run").read_text()
