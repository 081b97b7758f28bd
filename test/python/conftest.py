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
