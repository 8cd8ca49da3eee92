"""mathforge: versioned problem-solving corpora for math language models (RFT, tutorship amplification) as recipes."""
from __future__ import annotations

__version__ = "0.1.0"

_API = ("load_recipe", "build", "Build", "grade", "grade_batch", "pull", "push")
__all__ = ["__version__", *_API, "Recipe", "InputError"]


def __getattr__(name: str):
    """The API is imported on first use, so `import mathforge` and the command line's start stay fast."""
    if name in _API:
        from mathforge import api

        return getattr(api, name)
    if name == "Recipe":
        from mathforge.builders.recipe import Recipe

        return Recipe
    if name == "InputError":
        from mathforge.errors import InputError

        return InputError
    raise AttributeError(f"module 'mathforge' has no attribute {name!r}")
