"""The package's import graph: no circle, and every import points down the layer order below."""

import ast
from pathlib import Path

PACKAGE = Path("visual_iq")
# Lower layers first; a module may import only modules of lower layers (function-level imports included).
LAYERS = [
    {"errors", "files", "catch", "augment", "losses", "allocator", "fire"},
    {"envs", "networks", "objectives", "hyperparameters"},
    {"demos", "experts"},
    {"buffer", "rollout", "agent", "capture"},
    {"device_replay", "frame_cache", "rewards", "whole_update"},
    {"batches", "collector", "evaluation", "recording", "misses", "curves", "warm_start", "checkpoints", "schedule",
     "averaging"},
    {"module"},
    {"cli"},
    {"tools", "__main__"},
]


def _layer(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if name in layer:
            return index
    raise AssertionError(f"visual_iq.{name} is in no layer of {__file__}: add it")


def _imports(path: Path) -> set[str]:
    """visual_iq modules (first component after the package) that ``path`` imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("visual_iq"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names if alias.name != "__version__")
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("visual_iq."))
    return found


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_imports_only_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue  # the package root registers Catch and holds the version
        name = _module_name(path)
        for imported in _imports(path) - {name}:
            if _layer(imported) >= _layer(name) and not (name == "tools" and imported == "tools"):
                upward.append(f"{path} imports visual_iq.{imported}")
    assert not upward, "imports that do not point to a lower layer:\n" + "\n".join(upward)


def test_module_stays_small():
    # module.py composes the pieces; the bound catches their logic creeping into it (it was 300
    # until the whole-update path's hooks came in, its logic in visual_iq/whole_update.py; 330 until
    # the crop settings' two arguments, which are settings, not logic).
    assert len((PACKAGE / "module.py").read_text().splitlines()) < 335
