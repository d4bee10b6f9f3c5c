"""TRL-style recipe arguments (`--config recipe.yaml` plus `--key value` overrides) with one-line errors.

TRL's parser reads the YAML with tracebacks for the common mistakes: a missing or misspelt
recipe file (FileNotFoundError), a folder, a YAML syntax error, unknown keys. Here the recipe
file is checked first and every such failure is a :class:`ConfigError` naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erv.errors import ConfigError, one_line_text


def _config_paths(argv: Sequence[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


def recipe_overrides(values: dict[str, Any]) -> list[str]:
    """Command-line arguments that set recipe fields: `--key value` (a list gives several values)."""
    argv: list[str] = []
    for key, value in values.items():
        argv += [f"--{key}", *(map(str, value) if isinstance(value, (list, tuple)) else [str(value)])]
    return argv


def check_recipe_file(path: str) -> None:
    """The recipe must be a readable YAML file holding a mapping of field names to values."""
    import yaml

    recipe = Path(path).expanduser()
    if not recipe.exists():
        raise ConfigError(f"--config {path}: recipe file not found")
    if recipe.is_dir():
        raise ConfigError(f"--config {path}: is a folder, expected a YAML file")
    try:
        data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML ({problem})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping of field: value, got {type(data).__name__}")


def check_choices(arguments: Any) -> None:
    """Every field with `choices` metadata holds one of them (None: unset).

    argparse checks choices only for values given on the command line; values from the YAML
    recipe become parser defaults and pass unchecked, so they are checked here.
    """
    for spec in dataclasses.fields(arguments):
        choices, value = spec.metadata.get("choices"), getattr(arguments, spec.name)
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(f"{spec.name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def parse_recipe(dataclass_types: Sequence[type], argv: Sequence[str], prog: str) -> tuple[Any, ...]:
    """The dataclasses filled from the recipe and the command line (TRL's `TrlParser`).

    A field that no dataclass has (in the YAML or on the command line), a misspelt or
    abbreviated option, an invalid value and a value outside a field's `choices` become a
    ConfigError (one line, exit 2).
    """
    from trl import TrlParser

    class _RecipeParser(TrlParser):
        def error(self, message: str):  # argparse's usage errors: one line like every user error
            raise ConfigError(message)

    argv = list(argv)
    for path in _config_paths(argv):
        check_recipe_file(path)
    # no abbreviations: a misspelt `--learning_rat` must not silently set learning_rate
    parser = _RecipeParser(tuple(dataclass_types), allow_abbrev=False)
    parser.prog = prog
    try:
        parsed = tuple(parser.parse_args_and_config(argv))
    except ValueError as exc:
        raise ConfigError(one_line_text(str(exc)) or f"{prog}: invalid arguments") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the recipe: {exc}") from None
    for arguments in parsed:
        check_choices(arguments)
    return parsed
