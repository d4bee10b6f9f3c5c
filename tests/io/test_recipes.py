"""erv.io.recipes: a missing or broken recipe file is one line naming it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from erv.errors import ConfigError
from erv.io.recipes import parse_recipe


@dataclass
class Args:
    learning_rate: float = 1e-3
    name: str = "x"
    mode: str | None = field(default=None, metadata={"choices": ["fast", "exact"]})


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


def test_a_choice_from_the_recipe_is_checked_like_one_from_the_command_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mode: quick\n")
    with pytest.raises(ConfigError, match="mode must be one of fast, exact, got 'quick'"):
        parse_recipe((Args,), ["--config", str(recipe)], "erv test")
    with pytest.raises(ConfigError, match="invalid choice: 'quick'"):
        parse_recipe((Args,), ["--mode", "quick"], "erv test")
    recipe.write_text("mode: exact\n")
    assert parse_recipe((Args,), ["--config", str(recipe)], "erv test")[0].mode == "exact"
    assert parse_recipe((Args,), [], "erv test")[0].mode is None
