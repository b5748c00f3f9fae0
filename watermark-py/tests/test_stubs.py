"""The shipped stubs (_native.pyi) agree with the compiled module, as `mypy.stubtest` checks:
every public name, every method and its parameters, properties, and which classes are final."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tracemark
from tracemark import _native


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stubtest_finds_no_difference(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("TRACEMARK_REQUIRE_MYPY") == "1":
            raise AssertionError("mypy is not installed in this environment; run scripts/python-venv.sh")
        pytest.skip("mypy is not installed (pip install mypy)")
    # Run in an empty directory so that only the installed package (module and stubs) is seen
    # and mypy's cache lands in the test's temporary directory.
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "tracemark._native"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"stubtest:\n{result.stdout}\n{result.stderr}"


def test_package_reexports_everything_and_ships_py_typed():
    for name in _public(_native):
        assert getattr(tracemark, name) is getattr(_native, name)
    assert Path(tracemark.__file__).with_name("py.typed").exists()
    assert Path(tracemark.__file__).with_name("_native.pyi").exists()
