"""The documentation keeps up with the code: every model option is described where users look, the README stays short."""

import dataclasses
import inspect
from pathlib import Path

from visual_iq.train.config import GROUPS
from visual_iq.train.module import IQLearn

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide.md"


def _model_options() -> list[str]:
    """Every option of the model as the config names it: ``data.batch_size``, ``network``, ..."""
    names = []
    for name in inspect.signature(IQLearn.__init__).parameters:
        if name in GROUPS:
            names += [f"{name}.{field.name}" for field in dataclasses.fields(GROUPS[name])]
        elif name != "self":
            names.append(name)
    return names


def test_every_model_option_is_in_the_guide():
    guide = GUIDE.read_text()
    start = guide.index("## Every model option")
    section = guide[start:guide.index("\n## ", start + 1)]
    missing = [name for name in _model_options() if f"| `{name}` |" not in section]
    assert not missing, f"docs/guide.md's table of model options lacks {missing}"


def test_the_readme_is_a_doorway():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: details go to docs/guide.md, results to research/"
    for link in ("docs/guide.md", "research/results.md"):
        assert link in README.read_text()


def test_every_group_and_option_is_documented_in_the_code():
    # the module's docstring names every group; each group's fields carry a docstring (what --help prints)
    docstring = inspect.getdoc(IQLearn)
    assert all(f"``{name}``" in docstring for name in inspect.signature(IQLearn.__init__).parameters if name != "self")
    for group, cls in GROUPS.items():
        source = inspect.getsource(cls)
        for field in dataclasses.fields(cls):
            after = source[source.index(f"    {field.name}:"):].splitlines()[1].strip()
            assert after.startswith('"""'), f"{group}.{field.name} has no docstring"
