"""Fixtures shared by the engine tests."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def two_op_model(tmp_path_factory) -> str:
    """The tuning tests' tiny TorchScript model (test/fixtures/make_tune_models.py), input x:4,32."""
    d = tmp_path_factory.mktemp("tune_models")
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "fixtures", "make_tune_models.py"), str(d)], check=True)
    return str(d / "two_op.pt")
