"""torchtvm: compile TorchScript models with Apache TVM and ship them as TorchScript.

    import torchtvm
    m = torchtvm.compile(torch.jit.trace(model, x), {"input_infos": [("x", (1, 3, 224, 224))]})
"""

from torchtvm.common import isa_cap as _isa_cap
from torchtvm.common.errors import EngineError

_isa_cap.apply_to_environment()  # before torch runs any kernel (oneDNN and ATen read it once)

__all__ = ["EngineError", "compile"]


def compile(jit_module, option: dict | None = None):  # noqa: A001  (the seed's name)
    from torchtvm.service.seed_api import compile as _compile

    return _compile(jit_module, option or {})


def _load_runtime_on_import():
    # `import torchtvm` is enough to load exported models: register the custom class if built.
    try:
        from torchtvm.common import runtime_library as runtime

        runtime.load_library()
    except Exception:
        pass


_load_runtime_on_import()
