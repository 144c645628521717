"""Import Gradio without rewriting its type stubs, half of its import time.

On every import, Gradio's component metaclass regenerates the `.pyi` type stub beside each
component's source (`gradio.component_meta.create_or_modify_pyi`): it parses some eighty
source files with `ast` and writes into the installed package, or fails quietly where that is
read-only: about half of what `import gradio` takes (the bench's cold start shows the gain). The
stubs serve type checkers only, so the app's process loads that module with the step made a
no-op. Should a later Gradio move the step elsewhere, this finds nothing to skip and the import
is merely slower.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MODULE = "gradio.component_meta"
STEP = "create_or_modify_pyi"


def skip_stub_writing(*args, **kwargs) -> None:
    """Stands in for Gradio's stub writer: writes nothing."""


class _SkipStubs(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` as usual, and swaps its stub writer out once it has run."""

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != MODULE:
            return None
        sys.meta_path.remove(self)  # once; the lookup below must not find this finder again
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            if hasattr(module, STEP):
                setattr(module, STEP, skip_stub_writing)

        spec.loader.exec_module = exec_module
        return spec


def import_gradio() -> ModuleType:
    """`import gradio`, its stubs left as they are (see the module's note)."""
    if MODULE not in sys.modules and not any(isinstance(f, _SkipStubs) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipStubs())
    import gradio

    return gradio
