"""README 'Data' gives a quick MovieLens recipe beside the hours a default run takes: its config must be a valid
run config that shrinks what makes the default slow, and its commands must name evaluable methods."""

import re
from pathlib import Path

import yaml

from coea.config import RunConfig, run_config_from_dict
from coea.evaluation.registry import parse_method

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _quick_config() -> dict:
    start = README.index("```yaml\n# the `quick` preset") + len("```yaml\n")
    return yaml.safe_load(README[start:README.index("```", start)])


def test_readme_quick_movielens_config_is_a_valid_run_config_smaller_than_the_defaults():
    cfg, default = run_config_from_dict(_quick_config(), where="README"), RunConfig()
    assert cfg.dsie.encoder.epochs < default.dsie.encoder.epochs and cfg.pco.rounds < default.pco.rounds
    assert cfg.llm.data.novelty_cuts_per_user < default.llm.data.novelty_cuts_per_user
    assert (cfg.llm.data.sequence, cfg.llm.data.items) == (0, 0)


def test_readme_quick_movielens_commands_name_known_methods_and_warn_of_the_default_wall_time():
    block = README[README.index("**MovieLens: hours with the defaults"):README.index("```yaml\n# the `quick` preset")]
    commands = re.findall(r"coea evaluate --data movielens:\S+ (?:.*\\\n\s*)?.*--methods (\S+)", block)
    assert len(commands) == 2
    for methods in commands:
        for name in methods.split(","):
            parse_method(name)  # raises on an unknown method
    assert "1,500-3,000 s" in block and "hours" in block and "--config quick " in block


def test_the_readme_block_is_the_packaged_quick_preset():
    """The README shows what `--config quick` loads (walkthrough, session 57: the recipe was a snippet to paste
    into a file of one's own)."""
    from coea.config import config_to_dict, load_run_config

    assert config_to_dict(load_run_config(Path("quick"))) == config_to_dict(
        run_config_from_dict(_quick_config(), where="README"))
