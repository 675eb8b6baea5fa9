"""Modules envspec's libraries import at their top for features envspec never calls, loaded on first use.

Start-up is most of a short command's time, and imports are most of start-up.
`import kr8s` executes httpx-ws (websockets, for exec and port-forward), python-jsonpath
(JSONPath queries into a kubeconfig) and `cryptography.x509` (`whoami` of a client
certificate): together about 120 ms of the ~190 ms kr8s costs every command that talks
to a cluster. envspec uses kr8s's `Api`, `call_api` and its exceptions only. `import httpx`
also executes `httpx._main`, httpx's own command line, whenever `rich` and `pygments`
are installed (they come with many tools): another 40-130 ms for a function never called.
pydantic imports `importlib.metadata` to look for plugins, which the command line turns off.
The lists are where the choices are made: envspec/kube/__init__.py (the client's libraries)
and `skip_pydantic_plugins` in envspec/cli/main.py.

`defer(name)` puts a stand-in module in `sys.modules` whose spec is the real one, so
`import httpx_ws` inside kr8s binds the stand-in without executing anything; the first
attribute read (`httpx_ws.aconnect_ws`) imports the real module, copies its namespace
into the stand-in and returns the attribute, so later reads cost nothing extra.
`importlib.util.LazyLoader` cannot do this on Python 3.11: the import statement itself
reads `__spec__`, which makes a lazy module load at once.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

# Loading is under one lock: two threads reading a deferred module at once import it once.
_LOCK = threading.RLock()


class DeferredModule(ModuleType):
    """A module whose code runs when one of its attributes is first read."""

    def __init__(self, name: str, spec: Any) -> None:
        super().__init__(name)
        self.__spec__ = spec
        self.__loader__ = spec.loader
        if spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes the stand-in does not have yet, i.e. before loading.
        if attribute.startswith("__") and attribute.endswith("__"):
            raise AttributeError(attribute)  # copy, pickle and inspect probe dunders: no reason to load
        return getattr(self.load(), attribute)

    def load(self) -> ModuleType:
        name = self.__name__
        with _LOCK:
            if sys.modules.get(name) is self:
                del sys.modules[name]
                try:
                    real = importlib.import_module(name)
                except BaseException:
                    sys.modules[name] = self
                    raise
                self.__dict__.update({k: v for k, v in real.__dict__.items() if k != "__class__"})
                parent, _, child = name.rpartition(".")
                if parent and parent in sys.modules:
                    setattr(sys.modules[parent], child, real)
            return sys.modules[name]


def _find_spec(name: str) -> Any:
    parent, _, _ = name.rpartition(".")
    if not parent or parent in sys.modules:
        return importlib.util.find_spec(name)  # a submodule's parent is imported already: cheap
    # The parent is not imported yet, and must not be: its `__init__` is what imports `name`.
    parent_spec = importlib.util.find_spec(parent)
    if parent_spec is None or parent_spec.submodule_search_locations is None:
        return None
    return importlib.machinery.PathFinder.find_spec(name, list(parent_spec.submodule_search_locations))


def defer(name: str, functions: tuple[str, ...] = ()) -> bool:
    """Stand in for module `name` until it is used; False if it is already imported or not installed.

    `functions` are names a `from name import f` binds at import time; the stand-in offers a
    forwarder for each that loads the module when it is called, not when it is bound.
    """
    with _LOCK:
        if name in sys.modules:
            return False
        spec = _find_spec(name)
        if spec is None or spec.loader is None:
            return False
        module = DeferredModule(name, spec)
        for function in functions:
            setattr(module, function, _forwarder(module, function))
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            # `from cryptography import x509` takes the attribute of the parent, not sys.modules.
            setattr(sys.modules[parent], child, module)
        return True


def _forwarder(module: DeferredModule, function: str) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(module.load(), function)(*args, **kwargs)

    forward.__name__ = function
    return forward


def is_deferred(name: str) -> bool:
    """Whether `name` is still a stand-in that has not been loaded."""
    module = sys.modules.get(name)
    return isinstance(module, DeferredModule)
