"""What the backend hands to a library kernel: one `Offload` per op (or fused chain) rewritten to an
`R.call_dps_packed` call. Shared by the planners (library, library_attention, recurrent), the
per-op timing (measure) and the placement report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Offload:
    """One op given to the library: for the placement report."""

    name: str
    kind: str  # conv2d | linear | matmul
    shape: list
    epilogue: list = field(default_factory=list)
    func: str = ""
    # Names of the Relax vars the call replaces, root op first (provenance.py maps them to the
    # model's graph nodes for the graph view).
    vars: list = field(default_factory=list)
    # A float32 3x3 stride-1 convolution that the runtime's Winograd kernel can take, and whether
    # this build gives it that kernel (per-op placement does, where it timed faster).
    winograd_ok: bool = False
    algorithm: str = ""
    # A torchtvm.aten call: the ATen op it runs ("aten::group_norm").
    aten: str = ""

    def to_json(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "shape": self.shape, "epilogue": self.epilogue, "func": self.func}
        if self.aten:
            out["aten"] = self.aten
        return {**out, "algorithm": self.algorithm} if self.algorithm else out
