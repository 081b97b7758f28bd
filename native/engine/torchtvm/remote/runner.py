"""MetaSchedule's RPCRunner over a key's servers, with one hook of its own: after uploading a
candidate, it asks the server its name and leaves it beside the candidate's artifact
(`measured_on`), which the measure callback reads before the artifact is removed. So each trial
says where it was measured, and the database's side file (tune/database.py) keeps it."""

from __future__ import annotations

import os

MEASURED_ON = "measured_on"

_UPLOAD_SRC = '''
def upload_and_note(session, local_path, remote_path):
    import os
    session.upload(local_path, remote_path)
    rt_mod = session.load_module(remote_path)
    try:
        name = str(session.get_function("torchtvm.remote.server_name")())
    except Exception:
        name = "?"
    try:
        with open(os.path.join(os.path.dirname(local_path), "measured_on"), "w") as f:
            f.write(name)
    except OSError:
        pass
    return rt_mod
'''


def _by_value(src: str, name: str):
    """A function the runner's worker processes receive by value (cloudpickle), so that they need
    not import torchtvm (and torch) to run it."""
    ns: dict = {"__name__": "torchtvm_rpc_worker"}
    exec(compile(src, "<torchtvm_rpc_worker>", "exec"), ns)
    return ns[name]


def make_runner(fleet, evaluator_config, timeout_sec: float = 60.0):
    """RPCRunner measuring on `fleet`'s servers, as many at a time as the key has servers."""
    from tvm.s_tir import meta_schedule as ms

    host, port = fleet.tracker.rsplit(":", 1)
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=int(port), tracker_key=fleet.key, session_priority=1, session_timeout_sec=int(timeout_sec))
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator_config, max_workers=max(1, fleet.size), f_upload_module=_by_value(_UPLOAD_SRC, "upload_and_note"))


def measured_on(artifact_path) -> str | None:
    """The server a candidate was measured on, when it was uploaded to one."""
    if not artifact_path:
        return None
    try:
        with open(os.path.join(os.path.dirname(str(artifact_path)), MEASURED_ON), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None
