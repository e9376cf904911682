"""Atomic writes: the target holds the old content or the new one, never half; no temporary file stays."""
import os

import pytest
import torch

from functions.engine import fileio
from functions.engine.fileio import atomic_torch_save, atomic_write_bytes, atomic_write_text


def test_write_text_creates_and_replaces(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second ✓\n")
    assert path.read_text(encoding="utf-8") == "second ✓\n"
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_failure_mid_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", broken_fsync)  # the new bytes are written, not yet durable
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_failed_first_write_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C just before the rename

    monkeypatch.setattr(fileio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "out.json", "{}")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_modes_follow_the_umask_and_the_replaced_file(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    fresh = atomic_write_text(tmp_path / "fresh.txt", "x")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # like open(), not mkstemp's 0o600
    old = tmp_path / "old.txt"
    old.write_text("x")
    old.chmod(0o640)
    atomic_write_text(old, "y")
    assert old.stat().st_mode & 0o777 == 0o640


def test_torch_save_round_trips(tmp_path):
    path = tmp_path / "model.pt"
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    assert atomic_torch_save(state, path) == path
    loaded = torch.load(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 3


def test_torch_save_that_fails_while_pickling_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        atomic_torch_save({"w": torch.zeros(1000), "f": lambda: 0}, path)  # a lambda cannot be pickled
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


def test_csv_round_trips(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"arm": ["baseline", "cut 1"], "test_acc": [0.5, 0.75]})
    path = fileio.atomic_write_csv(frame, tmp_path / "t.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(path), frame)
    assert os.listdir(tmp_path) == ["t.csv"]


def test_a_figure_that_fails_to_render_keeps_the_old_file(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from functions.analysis.figures import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    (png,) = save_figure(fig, tmp_path / "fig", formats=("png",))
    before = png.read_bytes()

    def broken(*args, **kwargs):
        args[0].write(b"half a png")  # bytes reach the temporary file, then the renderer dies
        raise RuntimeError("renderer died")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="renderer died"):
        save_figure(fig, tmp_path / "fig", formats=("png",))
    assert png.read_bytes() == before
    assert os.listdir(tmp_path) == ["fig.png"]
    plt.close(fig)
