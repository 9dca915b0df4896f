"""The documentation keeps up with the code: every model option is described where users look."""

import inspect
from pathlib import Path

from visual_iq.train.module import IQLearn

README = Path(__file__).resolve().parent.parent / "README.md"


def _model_options() -> list[str]:
    return [name for name in inspect.signature(IQLearn.__init__).parameters if name != "self"]


def test_every_model_option_is_in_the_readme():
    readme = README.read_text()
    start = readme.index("The options of the model (`--model.*`)")
    options_paragraph = readme[start:readme.index("\n\n", start)]
    missing = [name for name in _model_options() if f"`{name}`" not in options_paragraph]
    assert not missing, f"README's list of model options lacks {missing}"


def test_every_model_option_is_in_the_docstring():
    docstring = inspect.getdoc(IQLearn)
    args = docstring[docstring.index("Args:"):]
    missing = [name for name in _model_options() if f"{name}:" not in args and f"{name}," not in args]
    assert not missing, f"IQLearn's docstring lacks {missing}"
