"""The package's architecture: folders on floors, every import pointing down, no circle of files.

A room is a folder of the package (``env``, ``data``, ...) or a top-level module (``cli``). Data flows
one way: env settings -> demos and the algorithm -> recording -> analysis -> training -> front ends.
A file may import files of its own room and of rooms on lower floors, never of a room above.
"""

import ast
from pathlib import Path

PACKAGE = Path("visual_iq")
FLOORS = [  # lowest first
    {"errors", "files"},  # the ground: error types, atomic writes
    {"env"},  # the Atari pipeline, FIRE, the tiny Catch task
    {"data", "algo"},  # demos, replay and batches | losses, objectives, networks, the agent
    {"record"},  # experts and the recorder
    {"analysis"},  # recovered rewards, misses, learning curves
    {"train"},  # the LightningModule and what it composes (gpu/: CUDA graphs)
    {"cli"},
    {"tools", "__main__"},
]


def _floor(room: str) -> int:
    for index, floor in enumerate(FLOORS):
        if room in floor:
            return index
    raise AssertionError(f"visual_iq.{room} is on no floor of {__file__}: add it")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Dotted names of the visual_iq modules ``path`` imports anywhere in it (function-level included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("visual_iq"):
            for alias in node.names:  # `from visual_iq.env import catch` names a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _path(candidate).exists() else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("visual_iq."))
    return found - {"visual_iq"}


def _path(module: str) -> Path:
    path = Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _room(module: str) -> str:
    return module.split(".")[1]


def _package_files() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "__init__.py"]  # the root registers Catch


def test_imports_only_point_down():
    upward = []
    for path in _package_files():
        room = _room(_module(path))
        for imported in _imports(path):
            if _room(imported) != room and _floor(_room(imported)) >= _floor(room):
                upward.append(f"{path} imports {imported}")
    assert not upward, "imports that do not point to a lower floor:\n" + "\n".join(upward)


def test_no_circle_of_files():
    graph = {_module(path): {name for name in _imports(path) if name != _module(path)} for path in _package_files()}
    visiting, done, circles = set(), set(), []

    def visit(module: str, trail: list[str]) -> None:
        if module in visiting:
            circles.append(" -> ".join(trail[trail.index(module):] + [module]))
            return
        if module in done or module not in graph:
            return
        visiting.add(module)
        for imported in sorted(graph[module]):
            visit(imported, trail + [module])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not circles, "files that import each other in a circle:\n" + "\n".join(circles)


def test_every_folder_is_a_declared_room():
    rooms = {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    rooms |= {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    for room in rooms:
        _floor(room)


def test_module_stays_small():
    # train/module.py composes the pieces; the bound catches their logic creeping into it (not to be raised).
    assert len((PACKAGE / "train" / "module.py").read_text().splitlines()) < 250
