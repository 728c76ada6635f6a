"""tests/conftest.py's ``require``: an optional dependency missing skips a test, or the whole file at module level,
and fails instead when CI demands the dependencies (ONBOARD_REQUIRE_INTEROP=1, as scripts/test.sh sets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
MISSING = "onboard_no_such_module_for_require"


def test_require_returns_the_module_when_installed(monkeypatch):
    monkeypatch.setenv("ONBOARD_REQUIRE_INTEROP", "1")
    assert require("json", "x") is json
    assert require("os.path", "x") is os.path  # a submodule, not its package


def test_require_skips_a_missing_module_locally(monkeypatch):
    monkeypatch.delenv("ONBOARD_REQUIRE_INTEROP", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"onboard\[sim\]") as exc:
        require(MISSING, "sim")
    assert exc.value.allow_module_level  # usable at the top of a test file


def test_require_fails_a_missing_module_in_ci(monkeypatch):
    monkeypatch.setenv("ONBOARD_REQUIRE_INTEROP", "1")
    with pytest.raises(pytest.fail.Exception, match=rf"{MISSING} is required here \(install onboard\[sim\]\)"):
        require(MISSING, "sim")


# pytest's exit codes: 5 = no test ran (the file was skipped), 2 = collection errors
@pytest.mark.parametrize(("ci", "outcome", "rc"), [("0", "1 skipped", 5), ("1", "1 error", 2)])
def test_require_at_module_level(tmp_path, ci, outcome, rc):
    """A file that requires a missing module at its top: skipped locally, an error (never a silent skip) in CI."""
    (tmp_path / "test_needs_it.py").write_text(
        textwrap.dedent(
            f"""
            from tests.conftest import require

            {MISSING} = require("{MISSING}", "sim")

            def test_never_runs():
                assert False
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "ONBOARD_REQUIRE_INTEROP": ci}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in proc.stdout.splitlines()[-1], proc.stdout + proc.stderr
    assert proc.returncode == rc, proc.stdout
    if ci == "1":
        assert f"{MISSING} is required here" in proc.stdout
