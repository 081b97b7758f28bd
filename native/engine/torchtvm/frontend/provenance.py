"""Which node of the model's own graph each compiled op came from, so that the graph view colours
the op itself and not "the i-th conv".

The identity travels with the model down the import path:

1. TorchScript -> FX (torch's converter): every FX node made while converting a TorchScript node
   is tagged in `node.meta["custom"]` with that node's id in the inspector's graph ("n12"). torch
   keeps `custom` metadata through re-export and decompositions, so the aten ops a node becomes
   all carry its id. (A `.pt2` program's nodes carry their own FX name the same way.)
2. FX -> Relax (TVM's importer): every Relax binding emitted while translating an FX node is named
   after that node and recorded in `sources` (Relax var name -> graph node id). TVM's passes keep
   a binding's name when they rewrite its value, so the library planner's chains (and the TVM
   candidates) still carry them at placement time.

Everything here is best effort: a model whose identity cannot be followed compiles the same, and
the graph view falls back to matching ops by kind and order.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import threading

from torchtvm.frontend.graph import PLUMBING, model_graph

SOURCE_KEY = "torchtvm_node"

_state = threading.local()


def _tag(node, source: str) -> None:
    custom = node.meta.get("custom")
    if not isinstance(custom, dict):
        custom = {}
        node.meta["custom"] = custom
    custom.setdefault(SOURCE_KEY, source)


def source_of(node) -> str | None:
    custom = node.meta.get("custom")
    return custom.get(SOURCE_KEY) if isinstance(custom, dict) else None


@contextlib.contextmanager
def tag_torchscript(module):
    """While torch converts `module` to FX, tag the FX nodes with the inspector's graph node ids.

    The converter walks its own copy of the inlined graph (with a few nodes of its own added), so
    its top-level nodes are aligned with the inspector's by op kind (a diff of two versions of the
    same sequence, not a guess across different graphs)."""
    from torch._export import converter

    try:
        ours = [(n["op"], n["id"]) for n in model_graph(module)["nodes"] if n["op"] not in ("input", "output")]
    except Exception:
        yield
        return
    cls = converter.TS2FXGraphConverter
    orig = cls.convert_node
    state = {"ids": None, "i": 0}

    def convert_node(self, node):
        import torch

        if not isinstance(self.ts_graph, torch._C.Graph):  # a loop or branch body: its parent node tags it
            return orig(self, node)
        if state["ids"] is None:
            theirs = [n.kind() for n in self.ts_graph.nodes()]
            ops = [k for k in theirs if k not in PLUMBING]
            match = difflib.SequenceMatcher(None, ops, [k for k, _ in ours], autojunk=False)
            by_op: dict[int, str] = {}
            for a, b, size in match.get_matching_blocks():
                for j in range(size):
                    by_op[a + j] = ours[b + j][1]
            ids, k = [], 0
            for kind in theirs:
                if kind in PLUMBING:
                    ids.append(None)
                else:
                    ids.append(by_op.get(k))
                    k += 1
            state["ids"] = ids
        i = state["i"]
        state["i"] += 1
        ids = state["ids"]
        source = ids[i] if i < len(ids) else None
        g = self.fx_graph
        last = next(iter(reversed(g.nodes)), None)
        out = orig(self, node)
        if source is not None and node.kind() not in PLUMBING:
            for n in reversed(g.nodes):
                if n is last:
                    break
                if n.op == "call_function":
                    _tag(n, source)
        return out

    cls.convert_node = convert_node
    try:
        yield
    finally:
        cls.convert_node = orig


def tag_program(ep) -> None:
    """A .pt2 program's own nodes are the graph view's nodes: tag each with its FX name."""
    for n in ep.graph.nodes:
        if n.op == "call_function":
            _tag(n, n.name)


def translate(ep, custom_convert_map, outputs: dict | None = None):
    """TVM's `from_exported_program`, recording which FX node each Relax binding came from.
    Returns (IRModule, {relax var name: graph node id}). `outputs`, when given, receives which
    Relax var holds each FX node's value: {var name: [FX node name, index]}, index -1 for the
    node's whole value, i for element i of a node that gives a tuple (node_outputs)."""
    from tvm import relax
    from tvm.relax.frontend.torch.exported_program_translator import (
        ExportedProgramImporter,
    )

    sources: dict[str, str] = {}
    importer = ExportedProgramImporter()

    def tracked(fn):
        def call(node, *rest):
            prev = getattr(_state, "node", None)
            _state.node = node
            try:
                return fn(node, *rest)
            finally:
                _state.node = prev

        return call

    importer.convert_map = {k: tracked(f) for k, f in importer.convert_map.items()}
    custom = {k: tracked(f) for k, f in (custom_convert_map or {}).items()}
    orig_emit = relax.BlockBuilder.emit

    def emit(self, expr, name_hint: str = ""):
        node = getattr(_state, "node", None)
        if node is None:
            return orig_emit(self, expr, name_hint)
        var = orig_emit(self, expr, name_hint or node.name)
        src = source_of(node)
        if src is not None:
            sources[var_name(var)] = src
        return var

    relax.BlockBuilder.emit = emit
    try:
        mod = importer.from_exported_program(ep, False, False, False, custom)
    finally:
        relax.BlockBuilder.emit = orig_emit
        _state.node = None
    if outputs is not None:
        try:
            outputs.update(node_outputs(importer.env, mod))
        except Exception:  # per-op comparison then maps nothing; the import is unaffected
            pass
    return mod, sources


def node_outputs(env: dict, mod) -> dict[str, list]:
    """{Relax var name: [FX node name, index]} from the importer's env (FX node -> the Relax
    expression of its value): the var that holds each node's value (index -1), or element i of a
    tuple value (index i). Other vars a node's translation emits hold intermediate values."""
    from tvm import relax

    tuples = {var_name(b.var): b.value for block in mod["main"].body.blocks for b in block.bindings if isinstance(b.value, relax.Tuple)}
    out: dict[str, list] = {}

    def add(var, value: list) -> None:
        # A var the importer emitted without a name (Relax's own "lv3") is no FX node's, and
        # passes after the import name their new bindings alike: leave it out.
        name = var_name(var)
        if not _AUTO_NAME.match(name) or name == value[0]:
            out.setdefault(name, value)

    # A node whose value is one tensor names its var before a node giving a tuple of which the
    # importer kept one element (BatchNorm's, read by the getitem after it).
    nodes = [n for n in env if getattr(n, "op", None) == "call_function"]
    nodes.sort(key=lambda n: isinstance(n.meta.get("val"), (tuple, list)))
    for node in nodes:
        expr = env[node]
        if isinstance(expr, relax.Var):
            add(expr, [node.name, -1])
            expr = tuples.get(var_name(expr), expr)
        if isinstance(expr, relax.Tuple):
            for i, f in enumerate(expr.fields):
                if isinstance(f, relax.Var):
                    add(f, [node.name, i])
    return out


_AUTO_NAME = re.compile(r"^(lv|gv)\d*(_\d+)*$")


def var_name(var) -> str:
    return str(getattr(var, "name", None) or getattr(var, "name_hint", ""))


def graph_nodes(names, sources: dict[str, str]) -> list[str]:
    """The graph node ids of Relax var names, in order, without repeats."""
    out: list[str] = []
    for n in names:
        s = sources.get(n)
        if s is not None and s not in out:
            out.append(s)
    return out


# Relax ops that a placed op's root can be, per placement kind.
_ROOT_OPS = {"conv2d": ("relax.nn.conv2d",), "depthwise_conv2d": ("relax.nn.conv2d",), "depthwise_pointwise": ("relax.nn.conv2d",), "grouped_conv2d": ("relax.nn.conv2d",), "linear": ("relax.matmul", "relax.linear"), "matmul": ("relax.matmul",)}


def source_graph(mod, sources: dict[str, str]):
    """From the imported module (before any pass): which graph nodes feed each graph node, and
    which Relax ops each graph node became. Returns (feeds, ops)."""
    from tvm import relax

    feeds: dict[str, list[str]] = {}
    ops: dict[str, set] = {}
    func = mod["main"]
    for block in func.body.blocks:
        for b in block.bindings:
            src = sources.get(var_name(b.var))
            if src is None:
                continue
            val = b.value
            if isinstance(val, relax.Call) and hasattr(val.op, "name"):
                ops.setdefault(src, set()).add(str(val.op.name))
            args = list(getattr(val, "args", None) or getattr(val, "fields", None) or [])
            for a in args:
                if isinstance(a, relax.Var):
                    t = sources.get(var_name(a))
                    if t is not None and t != src and t not in feeds.setdefault(src, []):
                        feeds[src].append(t)
    return feeds, ops


def op_nodes(kind: str, names: list[str], sources: dict[str, str], feeds: dict, ops: dict) -> tuple[str | None, list[str]]:
    """The graph node a placed op came from and the graph nodes fused into its call (bias,
    BatchNorm, residual add, activation). `names`: the Relax vars the call replaces, root first.
    A root that a pass rebuilt (BatchNorm folding names the new convolution afresh) is the node
    of that kind feeding the first fused node, when exactly one does."""
    nodes = graph_nodes(names, sources)
    root = sources.get(names[0]) if names else None
    if root is None and nodes:
        want = _ROOT_OPS.get(kind, ())
        cands = [t for t in feeds.get(nodes[0], []) if ops.get(t, set()) & set(want)]
        if len(cands) == 1:
            root = cands[0]
    named = [n for n in nodes if n != root]
    # A fused op whose bindings a pass renamed (an unfolded BatchNorm decomposed into multiply and
    # add) still lies between two named ones: fill such gaps along the graph's own edges.
    fused: list[str] = []
    for n in named:
        done = set(fused) | ({root} if root else set())
        for gap in _between(n, done, feeds, depth=3):
            if gap not in fused:
                fused.append(gap)
        if n not in fused:
            fused.append(n)
    return root, fused


def _between(node: str, targets: set, feeds: dict, depth: int) -> list[str]:
    """The graph nodes on a path from one of `targets` to `node` (exclusive), shortest first."""
    srcs = feeds.get(node, [])
    if not targets or any(t in targets for t in srcs):
        return []
    if depth == 0:
        return []
    for t in srcs:
        if t in targets:
            return []
        path = _between(t, targets, feeds, depth - 1)
        if path or any(x in targets for x in feeds.get(t, [])):
            return path + [t]
    return []
