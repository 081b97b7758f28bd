"""Fixtures shared by the engine tests."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory):
    """The engine's home (kernel timing cache) in a temp folder, not the user's ~/.torchtvm."""
    home = tmp_path_factory.mktemp("torchtvm_home")
    old = os.environ.get("TORCHTVM_HOME")
    os.environ["TORCHTVM_HOME"] = str(home)
    yield str(home)
    if old is None:
        os.environ.pop("TORCHTVM_HOME", None)
    else:
        os.environ["TORCHTVM_HOME"] = old


@pytest.fixture(scope="session")
def two_op_model(tmp_path_factory) -> str:
    """The tuning tests' tiny TorchScript model (test/fixtures/make_tune_models.py), input x:4,32."""
    d = tmp_path_factory.mktemp("tune_models")
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "fixtures", "make_tune_models.py"), str(d)], check=True)
    return str(d / "two_op.pt")


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs at tmp_path/disk, where this process may mount one (root on Linux); skipped
    with the reason elsewhere."""
    where = tmp_path / "disk"
    where.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield str(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill_disk(folder: str) -> None:
    """Writes a file into `folder` until its disk has no byte left."""
    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
