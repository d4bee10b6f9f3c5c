"""erv.io.recipes: a missing or broken recipe file is one line naming it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from erv.errors import ConfigError
from erv.io.recipes import parse_recipe


@dataclass
class Args:
    learning_rate: float = 1e-3
    name: str = "x"


@pytest.mark.parametrize(
    "body,message",
    [
        (None, "recipe file not found"),
        ("learning_rate: [1, 2\n", r"recipe.yaml:\d+: invalid YAML"),
        ("- 1\n- 2\n", "a recipe must be a YAML mapping of field: value, got list"),
        ("unknown_field: 3\n", "unknown_field"),
    ],
)
def test_recipe_problems_are_config_errors(tmp_path, body, message):
    recipe = tmp_path / "recipe.yaml"
    if body is not None:
        recipe.write_text(body)
    with pytest.raises(ConfigError, match=message):
        parse_recipe((Args,), ["--config", str(recipe)], "erv test")


def test_a_folder_is_not_a_recipe_and_a_good_recipe_parses(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        parse_recipe((Args,), ["--config", str(tmp_path)], "erv test")
    (tmp_path / "r.yaml").write_text("learning_rate: 2.0e-5\n")
    (args,) = parse_recipe((Args,), ["--config", str(tmp_path / "r.yaml"), "--name", "y"], "erv test")
    assert (args.learning_rate, args.name) == (2e-5, "y")
