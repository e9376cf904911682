"""Every papermill command in the README runs (smoke variant): the README cannot drift from the notebooks.

Each ```bash block's papermill commands are run as written, with three substitutions that keep the
repository clean: the profile is ``smoke`` (from ``$TL_STUDY_PROFILE``, as under nbval), the executed
notebook goes to a temporary folder, and the "fresh" results folders of the recompute command point into
that folder too. ``TL_STUDY_DATA=/path/to/data`` becomes the tests' data root. (The quick start on the
shipped results without any data is tests/test_quickstart.py; the install commands are what CI runs.)
"""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands(prefix: str = "papermill") -> list[str]:
    """The README's shell commands (one per line, ``&&`` chains split) that invoke ``prefix``."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part)
                env = [w for w in words if re.fullmatch(r"[A-Z_]+=.*", w)]
                if words[len(env):len(env) + 1] == [prefix]:
                    commands.append(part.strip())
    return commands


def smoke_variant(command: str, tmp: Path) -> list[str]:
    """The command as argv with the tests' data root, smoke profile and outputs under ``tmp``."""
    words = [w for w in shlex.split(command) if not re.fullmatch(r"[A-Z_]+=.*", w)]
    inputs = [i for i, w in enumerate(words) if w.endswith(".ipynb")]
    words[inputs[1]] = str(tmp / "out.ipynb")  # the executed copy
    text = shlex.join(words).replace("fresh_results", str(tmp / "fresh_results"))
    return shlex.split(text.replace("fresh_models", str(tmp / "fresh_models")))


def test_the_readme_has_the_commands_it_promises():
    commands = readme_commands()
    assert any("--cwd MNIST MNIST/empirical_experiment.ipynb" in c for c in commands)
    assert all("--cwd" in c for c in commands), "results land next to the notebook only with --cwd"


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_in_smoke(command, tmp_path):
    env = dict(os.environ, TL_STUDY_PROFILE="smoke")
    result = subprocess.run(smoke_variant(command, tmp_path), cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out.ipynb").exists()
