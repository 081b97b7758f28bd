"""The placement report's `source_ops`: the engine's table of placement kind -> the graph ops it can
come from, which the graph view uses to match a placed op that names no graph node by kind and
order. It must cover every kind the library planners give an op, and name the ops the graph view's
graphs (TorchScript and torch.export) show for them."""

from __future__ import annotations

import json

import torch
import torch.nn as nn

from torchtvm.backend import library, placement, recurrent
from torchtvm.backend.placement import SOURCE_OPS
from torchtvm.frontend.graph import model_graph, program_graph
from torchtvm.frontend.importer import import_program


class Heavy(nn.Module):
    """One op of each by-order kind: conv2d, depthwise and grouped conv2d, max_pool2d, linear, matmul."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x, y):
        h = self.pool(self.grouped(self.dw(self.conv(x))))
        z = self.fc(h.flatten(1))
        return torch.matmul(z.unsqueeze(0), y)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.gru = nn.GRU(8, 8, batch_first=True)

    def forward(self, x):
        return self.gru(self.lstm(x)[0])[0]


def _graph_ops(model, example) -> tuple[set[str], set[str]]:
    """The op names the graph view shows: the TorchScript graph's and the torch.export graph's."""
    traced = torch.jit.trace(model.eval(), example)
    ts = {n["op"] for n in model_graph(traced)["nodes"]}
    ep = torch.export.export(model.eval(), example)
    ex = {n["op"] for n in program_graph(ep, [])["nodes"]}
    return ts, ex


def test_report_sends_source_ops_and_json_carries_it():
    rep = placement.report("tvm", [], [], None, 1.0)
    assert rep["source_ops"] == SOURCE_OPS
    assert rep["source_ops"] is not SOURCE_OPS  # a copy: a caller editing the report cannot change the table
    assert json.loads(json.dumps(rep))["source_ops"] == SOURCE_OPS
    assert all(ops and all(op.startswith("aten::") for op in ops) for ops in SOURCE_OPS.values())


def test_source_ops_cover_the_kinds_the_library_gives_ops_and_name_their_graph_ops():
    model = Heavy()
    example = (torch.randn(1, 4, 8, 8), torch.randn(16, 5))
    mod = import_program(torch.export.export(model.eval(), example), list(example), 1).mod
    kinds = {o.kind for o in library.candidates(mod)}
    assert kinds >= {"conv2d", "depthwise_conv2d", "grouped_conv2d", "max_pool2d", "linear", "matmul"}, kinds
    assert kinds <= set(SOURCE_OPS)
    ts, ex = _graph_ops(model, example)
    for kind in kinds:
        assert set(SOURCE_OPS[kind]) & ts, (kind, sorted(ts))
        assert set(SOURCE_OPS[kind]) & ex, (kind, sorted(ex))


def test_source_ops_cover_the_recurrent_kinds():
    assert set(recurrent.FUNCS) <= set(SOURCE_OPS)
    ts, ex = _graph_ops(Recurrent(), (torch.randn(2, 3, 8),))
    for kind in recurrent.FUNCS:
        assert set(SOURCE_OPS[kind]) & ts and set(SOURCE_OPS[kind]) & ex, (kind, sorted(ts), sorted(ex))


def test_report_shows_symbolic_shapes_in_the_users_words():
    """TVM prints a symbolic dim as "s67 * T.int64(16)" (torch.export's symbol, TIR's constants);
    the report shows it as "16·batch": the symbol under the input spec's name, constants plain."""
    from torchtvm.backend.offload import Offload
    from torchtvm.backend.placement import readable_dim, symbol_names
    from torchtvm.common.specs import parse_specs

    names = {"s67": "batch", "s9": "seq"}
    assert readable_dim("s67 * T.int64(16)", names) == "16·batch"
    assert readable_dim("T.int64(16) * s67", names) == "16·batch"
    assert readable_dim("s67 // T.int64(2)", names) == "batch/2"
    assert readable_dim("s67 * s9", names) == "batch·seq"
    assert readable_dim("s5 * T.int64(4)", names) == "4·s5"  # a symbol no spec names keeps TVM's name
    assert readable_dim(64, names) == 64
    rep = placement.report("library", [], [Offload("view_16", "linear", ["s67 * T.int64(16)", 64])], None, 1.0, names=names)
    assert rep["ops"][0]["shape"] == ["16·batch", 64]
    assert rep["ops"][0]["name"] == "view_16"  # the op's identity is unchanged

    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(32, 8)

        def forward(self, x):
            return self.fc(x.view(-1, 32))

    x = torch.randn(4, 16, 32)
    ep = torch.export.export(Lin().eval(), (x,), dynamic_shapes=({0: torch.export.Dim("b", min=1, max=64)},))
    mod = import_program(ep, [x], 1).mod
    specs = parse_specs([{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 64}, 16, 32]}])
    assert list(symbol_names(mod, specs).values()) == ["batch"]
    ops = library.candidates(mod)
    assert [[readable_dim(d, symbol_names(mod, specs)) for d in o.shape] for o in ops if o.kind == "linear"] == [["16·batch", 8]]
