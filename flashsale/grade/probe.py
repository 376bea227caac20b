"""Did the learner's code change the kit? A fingerprint of the kernel, taken before the task cells and after.

A task cell runs in the same kernel as the check it must pass, so it could edit the check
(`reservation.check = lambda *a: None`), a helper the check relies on (`exercises.expect`, `Wrong`),
a builtin, the notebook's own name for the module (`reservation = ...`) or IPython's cell transformers.
The grader runs `cell(nonce, prepare=True)` before the first task cell and `cell(nonce)` before and after
each check cell, and compares what they print (`changes`). The first fingerprint is taken before any of
the learner's code has run, and is kept outside the kernel: the learner's code cannot alter it.

What it cannot see: code written against this very probe (one that restores what it patched before the
probe runs, or lies through a patched `id`). Nothing that runs the learner's code in the check's own
process can; it catches the kit being edited, not the kernel being attacked.
"""
import inspect
import json


def fingerprint(prepare: bool = False, namespace: dict | None = None) -> dict[str, str]:
    """What each name of the kit, the builtins, the notebook's namespace and IPython's hooks refers to.

    `prepare`: first import every module of the package, so that nothing the check uses is imported for the
    first time after the learner's code ran (a module loaded later has no fingerprint to compare with)."""
    import builtins
    import collections.abc
    import hashlib
    import importlib
    import pkgutil
    import sys
    import types

    import flashsale

    ipython_owned = {"display", "get_ipython", "exit", "quit", "In", "Out", "input"}  # IPython swaps these itself
    def load(path: collections.abc.Iterable[str], prefix: str) -> None:
        for found in pkgutil.iter_modules(path, prefix):
            if not found.name.startswith(unused) and not found.name.endswith("__main__"):
                module = importlib.import_module(found.name)
                if found.ispkg:
                    load(module.__path__, found.name + ".")

    # No check uses the grader, the deck or the command line, and they import nbformat, whose JSON schema's
    # grammar alone (rfc3987_syntax) took 28 s to import here on a busy machine.
    unused = ("flashsale.grade", "flashsale.slides", "flashsale.cli")
    if prepare:
        load(flashsale.__path__, "flashsale.")
        importlib.import_module("flashsale.lab").show  # noqa: B018 (binds the names it loads lazily)
    kept = sys.modules.setdefault("_flashsale_grade_kept", types.ModuleType("_flashsale_grade_kept"))
    refs = kept.__dict__.setdefault("refs", [])  # alive, so no object of the kit's frees its id for a stand-in

    def token(value: object) -> str:
        if prepare:
            refs.append(value)
        kind = type(value)
        said = f"{kind.__module__}.{kind.__qualname__}:{id(value)}"
        function = getattr(value, "__func__", getattr(value, "fget", value))  # methods, static/class, property
        code = getattr(function, "__code__", None)
        if isinstance(code, types.CodeType):
            said += ":" + hashlib.sha1(code.co_code + repr((code.co_consts, code.co_names)).encode()).hexdigest()[:12]
            said += f":{id(getattr(function, '__defaults__', None))}:{id(getattr(function, '__kwdefaults__', None))}"
        return said

    found: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        if name != "flashsale" and not name.startswith("flashsale.") and name != "builtins":
            continue
        found[f"module {name}"] = token(module)
        for attr, value in list(vars(module).items()):
            if name == "builtins" and (attr.startswith("_") or attr in ipython_owned):
                continue
            found[f"{name}.{attr}"] = token(value)
            if isinstance(value, type) and value.__module__ == name:
                for member, inner in list(vars(value).items()):
                    found[f"{name}.{attr}.{member}"] = token(inner)
    for name, value in (namespace or {}).items():
        if not name.startswith("_") and name not in ipython_owned:
            found[f"the notebook's {name}"] = token(value)
    found["sys.settrace"], found["sys.setprofile"] = token(sys.gettrace()), token(sys.getprofile())
    # The import system up to the finder that finds the kit: one put ahead of it could hand out a module of its own
    # for one of the kit's. One appended after it cannot, and libraries append them (six, imported by the tests'
    # own wrong answers, appends its importer): not counted.
    ahead: list = []
    for finder in sys.meta_path:
        ahead.append(finder)
        try:
            if getattr(finder, "find_spec", lambda *a: None)("flashsale", None) is not None:
                break
        except Exception:  # noqa: BLE001  (a finder that fails to answer finds nothing here)
            continue
    found["sys.meta_path"] = " ".join(map(token, ahead))
    shell = getattr(builtins, "get_ipython", lambda: None)()
    if shell is not None:
        for hooks in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
            found[f"IPython's {hooks}"] = " ".join(map(token, getattr(shell, hooks)))
        for owner in (shell, getattr(shell, "kernel", None)):
            for attr in sorted(vars(owner) if owner is not None else ()):
                if callable(getattr(type(owner), attr, None)):  # a method shadowed on the instance
                    found[f"{type(owner).__name__}.{attr}"] = "replaced on the instance"
        handlers = getattr(getattr(shell, "kernel", None), "shell_handlers", {})
        found["the kernel's handlers"] = " ".join(f"{k}={token(v)}" for k, v in sorted(handlers.items()))
    return found


def cell(nonce: str, prepare: bool = False) -> str:
    """The source of a cell that prints `nonce` and the fingerprint, and leaves no name behind."""
    source = inspect.getsource(fingerprint).replace("def fingerprint(", "def _flashsale_fingerprint(", 1)
    return (f"{source}\n"
            f"print({nonce!r} + __import__('json').dumps(_flashsale_fingerprint({prepare!r}, get_ipython().user_ns)))\n"
            "del _flashsale_fingerprint\n")


def read(nonce: str, text: str) -> dict[str, str] | None:
    """The fingerprint a probe cell printed; None if it printed none (its output taken away) or more than one
    (another thread of the learner's printing a forged one into the probe's cell)."""
    printed = [line[len(nonce):] for line in text.splitlines() if line.startswith(nonce)]
    return json.loads(printed[0]) if len(printed) == 1 else None


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Names of the kit that now refer to something else, or are gone, or were added where only the kit adds.

    New modules of the package and new names in the notebook are the learner's own; a new attribute of a kit
    module counts only if it is not a submodule (importing `flashsale.x.y` binds `y` on `flashsale.x`)."""
    changed = [name for name, said in before.items() if after.get(name) != said]
    modules = {name.removeprefix("module ") for name in before if name.startswith("module ")}
    for name, said in after.items():
        if name in before or name.startswith(("module ", "the notebook's ")):
            continue
        owner = name.rsplit(".", 1)[0]
        if owner in modules:
            if not said.startswith("builtins.module:"):
                changed.append(name)  # a new name in a kit module: it may shadow a builtin the check uses
        elif owner in before or not name.startswith("flashsale."):
            changed.append(name)  # a new member of a kit class, or a hook of the kernel
    return changed
