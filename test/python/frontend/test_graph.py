"""The inspect result's `graph`: ops as a DAG (plumbing nodes folded away) for the app's graph view."""

import torch

from torchtvm.frontend.graph import model_graph, program_graph
from torchtvm.frontend.inspection import inspect_module


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(y.mean(dim=(2, 3)))


def test_graph_lists_ops_in_order_with_edges_and_scopes():
    m = torch.jit.trace(_Net().eval(), torch.randn(1, 3, 8, 8))
    g = inspect_module(m)["graph"]
    nodes = g["nodes"]
    ops = [n["op"] for n in nodes]
    assert ops[0] == "input" and ops[-1] == "output"
    assert not any(op in ("prim::Constant", "prim::GetAttr", "prim::ListConstruct") for op in ops)
    conv = next(n for n in nodes if n["op"] in ("aten::_convolution", "aten::conv2d"))
    assert conv["inputs"] == ["in0"]
    assert conv.get("scope") == "conv"
    linear = next(n for n in nodes if n["op"] == "aten::linear")
    assert linear.get("scope") == "fc"
    ids = {n["id"] for n in nodes}
    assert all(src in ids for n in nodes for src in n["inputs"])
    assert nodes[-1]["inputs"] == [linear["id"]]
    assert g["truncated"] is False


# ---- per-node shapes and placement identity ----------------------------------------------------

from torchtvm.common.specs import parse_specs  # noqa: E402


def _spec(*dims, dtype="float32"):
    return parse_specs([{"name": "x", "dims": list(dims), "dtype": dtype}])


def _by_op(nodes, op):
    return [n for n in nodes if n["op"] == op]


def test_ops_show_their_output_shapes_and_dtypes_for_the_given_specs():
    m = torch.jit.script(torch.jit.trace(_Net().eval(), torch.randn(1, 3, 8, 8)))
    g = inspect_module(m, _spec(2, 3, 16, 16))["graph"]
    nodes = g["nodes"]
    assert nodes[0]["outputs"] == [{"shape": [2, 3, 16, 16], "dtype": "float32"}]
    conv = next(n for n in nodes if n["op"] in ("aten::_convolution", "aten::conv2d"))
    assert conv["outputs"] == [{"shape": [2, 8, 16, 16], "dtype": "float32"}]
    assert _by_op(nodes, "aten::linear")[0]["outputs"] == [{"shape": [2, 4], "dtype": "float32"}]
    assert g["shapes_for"][0]["dims"] == [2, 3, 16, 16]


def test_a_traced_graph_gives_its_recorded_input_shapes_without_specs():
    m = torch.jit.trace(_Net().eval(), torch.randn(1, 3, 8, 8))
    nodes = inspect_module(m)["graph"]["nodes"]
    assert _by_op(nodes, "aten::linear")[0]["outputs"][0]["shape"] == [1, 4]


class _Strided(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.flatten(1), y.sum()


def test_symbolic_dims_show_as_their_symbols():
    m = torch.jit.trace(_Strided().eval(), torch.randn(1, 3, 16, 16))
    specs = parse_specs([{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 32}, 3, {"name": "h", "min": 16, "max": 512}, 16], "dtype": "float32"}])
    nodes = inspect_module(m, specs)["graph"]["nodes"]
    assert nodes[0]["outputs"][0]["shape"] == ["batch", 3, "h", 16]
    conv = next(n for n in nodes if n["op"] in ("aten::_convolution", "aten::conv2d"))
    assert conv["outputs"][0]["shape"] == ["batch", 8, "h/2", 8]
    assert _by_op(nodes, "aten::flatten")[0]["outputs"][0]["shape"] == ["batch", "32*h"]  # 8 * h/2 * 8
    assert _by_op(nodes, "aten::sum")[0]["outputs"][0]["shape"] == []


class _Block(torch.nn.Module):
    """A ResNet block with a downsampling shortcut: its 1x1 conv runs after the main branch's."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.down = torch.nn.Conv2d(3, 16, 1, stride=2, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(16, 4)

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        y = torch.relu(y + self.bn3(self.down(x)))
        return self.fc(y.mean(dim=(2, 3)))


def test_placed_ops_name_the_graph_node_they_came_from():
    from torchtvm.backend import library
    from torchtvm.frontend.importer import import_torchscript
    from torchtvm.pipeline.compile import _with_graph_nodes

    m = torch.jit.trace(_Block().eval(), torch.randn(1, 3, 16, 16))
    nodes = {n["id"]: n for n in inspect_module(m)["graph"]["nodes"]}
    imported = import_torchscript(m, _spec(1, 3, 16, 16))
    placed = library.candidates(imported.mod)
    rep = _with_graph_nodes({"ops": [o.to_json() for o in placed]}, imported, placed)
    ops = rep["ops"]
    assert len(ops) == 4 and all("node" in o for o in ops)
    convs = [o for o in ops if o["kind"] == "conv2d"]
    assert sorted(nodes[o["node"]]["op"] for o in convs) == ["aten::_convolution"] * 3
    assert len({o["node"] for o in convs}) == 3
    for o in convs:
        # Identity, not order: the first op fused into a conv's call reads that very conv.
        assert nodes[o["fused"][0]]["op"] == "aten::batch_norm"
        assert nodes[o["fused"][0]]["inputs"][0] == o["node"]
    # The call that also takes the residual add and the relu is conv2's (channels 16 -> 16, 3x3).
    residual = next(o for o in convs if "add" in o["epilogue"])
    assert [nodes[f]["op"] for f in residual["fused"]] == ["aten::batch_norm", "aten::add", "aten::relu"]
    linear = next(o for o in ops if o["kind"] == "linear")
    assert nodes[linear["node"]]["op"] == "aten::linear"


class _Pt2Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        y = torch.relu(self.c2(y) + y)
        return self.fc(y.mean(dim=(2, 3)))


def test_a_pt2_program_has_a_graph_with_its_symbolic_shapes_and_placement_identity(tmp_path):
    from torchtvm.backend import library
    from torchtvm.frontend.importer import import_torchscript, program_specs
    from torchtvm.frontend.inspection import inspect_file
    from torchtvm.frontend.loader import load_model
    from torchtvm.pipeline.compile import _with_graph_nodes

    batch = torch.export.Dim("batch", min=1, max=16)
    ep = torch.export.export(_Pt2Net().eval(), (torch.randn(2, 3, 8, 8),), dynamic_shapes=({0: batch},))
    path = str(tmp_path / "net.pt2")
    torch.export.save(ep, path)
    nodes = {n["id"]: n for n in inspect_file(path)["graph"]["nodes"]}
    assert nodes["in0"]["outputs"][0]["shape"] == ["batch", 3, 8, 8]
    assert nodes["linear"]["outputs"] == [{"shape": ["batch", 4], "dtype": "float32"}]
    assert nodes["out"]["inputs"] == ["linear"]

    ep = load_model(path)
    imported = import_torchscript(ep, program_specs(ep))
    _, offloads = library.offload(library.prepare(imported.mod, True), {"float32"})
    ops = _with_graph_nodes({"ops": [o.to_json() for o in offloads]}, imported, offloads)["ops"]
    by_node = {o["node"]: o for o in ops}
    # The unfolded BatchNorm (decomposed into a scale and a shift) is found between conv and relu.
    assert [nodes[f]["op"] for f in by_node["conv2d"]["fused"]] == ["aten::batch_norm", "aten::relu"]
    assert [nodes[f]["op"] for f in by_node["conv2d_1"]["fused"]] == ["aten::add", "aten::relu"]
    assert nodes[next(o["node"] for o in ops if o["kind"] == "linear")]["op"] == "aten::linear"


def test_scopes_of_a_converted_graph_are_module_paths():
    """After the TorchScript-to-export conversion the graph names scopes "Class::attr/..."; the
    graph (and the placement report's rows) show them as paths such as layer1.0.conv2."""
    import torch.nn as nn

    from torchtvm.common.specs import parse_specs
    from torchtvm.frontend.importer import import_torchscript

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv2(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Sequential(Block(), Block())

        def forward(self, x):
            return self.layer1(x)

    x = torch.randn(1, 4, 6, 6)
    module = torch.jit.trace(Net().eval(), x)
    buf = __import__("io").BytesIO()
    torch.jit.save(module, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)  # a saved model keeps no scopes; the conversion adds them
    import_torchscript(loaded, parse_specs([{"name": "x", "dims": [1, 4, 6, 6]}]))
    convs = [n for n in model_graph(loaded)["nodes"] if n["op"] == "aten::_convolution"]
    assert [n.get("scope") for n in convs] == ["layer1.0.conv2", "layer1.1.conv2"]


def test_a_saved_model_has_module_paths_without_conversion():
    """A saved and loaded model keeps no scope names, but its inlined graph knows each node's module
    hierarchy: the graph view can search "layer1" or "layer1.0" before anything is compiled."""
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x)) + x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Sequential(Block(), Block())
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.layer1(x).mean(dim=(2, 3)))

    buf = __import__("io").BytesIO()
    torch.jit.save(torch.jit.trace(Net().eval(), torch.randn(1, 4, 6, 6)), buf)
    buf.seek(0)
    nodes = model_graph(torch.jit.load(buf))["nodes"]
    by_op = lambda op: [n.get("scope") for n in nodes if n["op"] == op]  # noqa: E731
    assert by_op("aten::_convolution") == ["layer1.0.conv", "layer1.1.conv"]
    assert by_op("aten::add") == ["layer1.0", "layer1.1"]  # the block's own op: the block's path
    assert by_op("aten::linear") == ["fc"]
    assert by_op("aten::mean") == [None]  # the top level's own ops have no path


def test_a_program_graph_has_module_paths():
    """torch.export programs carry each node's module stack: the innermost is its path."""
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(8, 8)

        def forward(self, x):
            return torch.relu(self.fc1(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(Block(), Block())

        def forward(self, x):
            return self.encoder(x) * 2

    ep = torch.export.export(Net().eval(), (torch.randn(2, 8),))
    nodes = program_graph(ep, [])["nodes"]
    assert [n.get("scope") for n in nodes if n["op"] == "aten::linear"] == ["encoder.0.fc1", "encoder.1.fc1"]
    assert [n.get("scope") for n in nodes if n["op"] == "aten::relu"] == ["encoder.0", "encoder.1"]
    assert [n.get("scope") for n in nodes if n["op"] == "aten::mul"] == [None]
