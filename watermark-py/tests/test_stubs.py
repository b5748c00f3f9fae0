"""The shipped stubs (_native.pyi) and the compiled module list the same names and methods."""

import ast
import inspect
from pathlib import Path

import tracemark
from tracemark import _native

STUB = Path(tracemark.__file__).with_name("_native.pyi")


def _stub_names():
    tree = ast.parse(STUB.read_text())
    names, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            classes[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_") or n == "__version__"}, classes


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_and_module_have_the_same_names():
    stub_names, _ = _stub_names()
    module_names = _public(_native) | {"__version__"}
    assert stub_names == module_names, (
        f"missing from the stub: {sorted(module_names - stub_names)}; "
        f"not in the module: {sorted(stub_names - module_names)}"
    )


def test_stub_and_module_have_the_same_methods():
    _, classes = _stub_names()
    for name, stub_methods in classes.items():
        cls = getattr(_native, name)
        if issubclass(cls, BaseException):
            continue
        module_methods = _public(cls)
        public_stub = {m for m in stub_methods if not m.startswith("_")}
        assert public_stub == module_methods, (
            f"{name}: missing from the stub: {sorted(module_methods - public_stub)}; "
            f"not in the module: {sorted(public_stub - module_methods)}"
        )
        # Dunder methods the stub promises (__init__, __len__) exist on the class.
        for dunder in stub_methods - public_stub:
            assert hasattr(cls, dunder), f"{name}.{dunder}"


def test_stub_signatures_match_where_the_module_reports_them():
    # pyo3 exposes __text_signature__ for functions with #[pyo3(signature)]; compare the
    # parameter names to the stub's so a renamed argument cannot drift.
    tree = ast.parse(STUB.read_text())
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_native, node.name)
        for fn in node.body:
            if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
                continue
            if any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list):
                continue
            attr = inspect.getattr_static(cls, fn.name)
            target = attr.__func__ if isinstance(attr, staticmethod) else getattr(cls, fn.name)
            try:
                sig = inspect.signature(target)
            except (TypeError, ValueError):
                continue
            got = [p for p in sig.parameters if p not in ("self", "$self", "cls")]
            args = fn.args
            want = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
            assert got == want, f"{node.name}.{fn.name}: module {got}, stub {want}"


def test_package_reexports_everything_and_ships_py_typed():
    for name in _public(_native):
        assert getattr(tracemark, name) is getattr(_native, name)
    assert Path(tracemark.__file__).with_name("py.typed").exists()
