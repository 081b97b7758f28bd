"""Run a command as on a CPU with at most a given ISA, every library in it included:

    .venv/bin/python -m torchtvm.common.run_capped avx2 -- COMMAND [ARGS...]

CPUID is masked where the kernel allows it (see isa_cap.masked_environment); elsewhere the command
gets TORCHTVM_MAX_CPU_ISA only (the engine, torch's oneDNN, ATen and MKL, TVM's target), and the
line printed first says why.
"""

from __future__ import annotations

import os
import sys

from torchtvm.common import isa_cap


def main(argv: list[str] | None = None) -> int:
    """`python -m torchtvm.common.run_capped LEVEL -- COMMAND...`: COMMAND as on a CPU with at most LEVEL."""
    args = list(sys.argv[1:] if argv is None else argv)
    level, command = (args[0], args[1:]) if args else (None, [])
    command = command[1:] if command[:1] == ["--"] else command
    if level not in isa_cap.LEVELS or not command:
        print(f"usage: python -m torchtvm.common.run_capped {{{','.join(isa_cap.LEVELS)}}} [--] COMMAND [ARGS...]", file=sys.stderr)
        return 2
    why_not = isa_cap.cpuid_mask_unavailable()
    if why_not is None:
        env = isa_cap.masked_environment(level)
        print(f"run_capped: {level}, CPUID masked for {command[0]} and its children", file=sys.stderr)
    else:
        env = {**os.environ, isa_cap.ENV: level}
        print(f"run_capped: {level} by {isa_cap.ENV} only, CPUID not masked: {why_not}", file=sys.stderr)
    sys.stderr.flush()
    os.execvpe(command[0], command, env)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
