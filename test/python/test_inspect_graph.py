"""The inspect result's `graph`: ops as a DAG (plumbing nodes folded away) for the app's graph view."""

import torch

from torchtvm.inspector import inspect_module


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
