"""Verify and time a build on a server of an RPC tracker's key: a build for a CPU this machine does
not have (issue 25), compiled here and run where that CPU is.

`RemoteBuild(fleet, package)`: one session with a server of the key (through the tracker), the
build's deployable .pt uploaded once. `run(inputs)` uploads the inputs (torch.save), the server
runs the .pt on them (remote.server: torchtvm.remote.run_outputs) and the outputs come back, so the
verification (verify/checks.verify_runner) generates the inputs and PyTorch's reference outputs
here and compares them here, with the same tolerances as a local verification. `bench(path)` times
a model there (remote.server.bench_file). `server` names the server, as bench results do.
"""

from __future__ import annotations

import io
import json
import uuid

import torch

from torchtvm.common.errors import EngineError

SERVER_FIELDS = ("name", "cpu_model", "llvm_cpu", "hostname", "cores")


def _last_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[-1][:300] if text else type(e).__name__


class RemoteBuild:
    """A session with one server of `fleet`'s key, holding the uploaded build (see the module doc)."""

    def __init__(self, fleet, package: str, timeout: int = 600):
        from tvm import rpc

        from torchtvm.remote.fleet import parse_tracker

        self.fleet = fleet
        host, port = parse_tracker(fleet.tracker)
        try:
            self.sess = rpc.connect_tracker(host, port).request(fleet.key, priority=1, session_timeout=timeout)
            info = json.loads(str(self.sess.get_function("torchtvm.remote.cpu_info")()))
            self._run = self.sess.get_function("torchtvm.remote.run_outputs")
            self._bench = self.sess.get_function("torchtvm.remote.bench")
        except Exception as e:
            raise EngineError("remote_failed", f"No torchtvm rpc-server of key {fleet.key!r} at {fleet.tracker} could be reached to verify the build "
                              f"({_last_line(e)}); start one with torchtvm rpc-server (an older one lacks torchtvm.remote.run_outputs).") from e
        self.server = {**{k: info.get(k) for k in SERVER_FIELDS}, "tracker": fleet.tracker, "key": fleet.key}
        self._prefix = f"verify_{uuid.uuid4().hex[:8]}_"
        self._uploaded: list[str] = []
        self.model = self.upload(package, "model.pt")

    def upload(self, path_or_bytes, name: str) -> str:
        remote = self._prefix + name
        self.sess.upload(path_or_bytes if isinstance(path_or_bytes, str) else bytearray(path_or_bytes), remote)
        self._uploaded.append(remote)
        return remote

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The build's outputs on `inputs`, run on the server, flattened as the reference is."""
        buf = io.BytesIO()
        torch.save([t.detach().cpu().contiguous() for t in inputs], buf)
        name = self.upload(buf.getvalue(), f"inputs_{len(self._uploaded)}.pt")
        try:
            out_name = str(self._run(self.model, name))
            self._uploaded.append(out_name)
            data = self.sess.download(out_name)
        except Exception as e:
            raise EngineError("run_failed", f"The build failed on {self.server['name']}: {_last_line(e)}", str(e)) from e
        outs = torch.load(io.BytesIO(bytes(data)), weights_only=True)
        return list(outs)

    def bench(self, remote_name: str, inputs: list | None = None, warmup: int = 10, iterations: int = 100, threads: int | None = None) -> dict:
        """remote.server.bench_file on an uploaded model, on the server: p50/p90/p99 in ms."""
        try:
            out = json.loads(str(self._bench(remote_name, json.dumps({"inputs": inputs, "warmup": warmup, "iterations": iterations, "threads": threads}))))
        except Exception as e:
            raise EngineError("remote_bench_failed", f"Timing failed on {self.server['name']}: {_last_line(e)}", str(e)) from e
        out.pop("measured_on", None)
        return out

    def close(self) -> None:
        for name in self._uploaded:
            try:
                self.sess.remove(name)
            except Exception:
                pass
        self._uploaded.clear()
        self.sess = None

    def __enter__(self) -> RemoteBuild:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

