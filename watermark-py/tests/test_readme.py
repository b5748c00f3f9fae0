"""The README's Python quick start runs as written (in a directory holding `keys/`)."""

import os
import subprocess
import sys

from conftest import REPO, require_model, run_cli


def _quick_start() -> str:
    section = (REPO / "README.md").read_text().split("## Python\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_quick_start(cli, tmp_path):
    require_model()
    run_cli(cli, "keygen", "--out", str(tmp_path / "keys"))
    result = subprocess.run([sys.executable, "-c", _quick_start()], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True "), result.stdout
