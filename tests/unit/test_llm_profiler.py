"""The llm profiler's code path with a tiny randomly initialised local model (no hub access)."""

import pytest

from coea.dsie.config import ProfileConfig, ProfilerKind
from coea.dsie.llm_profiler import profile_prompt
from coea.dsie.profiles import build_profiles
from coea.errors import CoeaInputError
from tests.helpers import events, tiny_causal_lm


def test_llm_profiles_from_a_local_model(tmp_path):
    df = events([("u", "1", "a", 1), ("u", "2", "b", 2), ("v", "3", "a", 3)])
    stats = {"size": 2, "top_categories": [{"category": "a", "share": 0.5}], "breadth": 2, "adoption_rate": 0.1}
    words = profile_prompt(stats).split() + ["drama", "fans", "explore", "often"]
    model_dir = tiny_causal_lm(tmp_path / "m", words)
    cfg = ProfileConfig(kind=ProfilerKind.LLM, model_path=str(model_dir), max_new_tokens=6)
    a = build_profiles(df, {"u": "g", "v": "g"}, {"g": "0-1"}, cfg)["g"]
    b = build_profiles(df, {"u": "g", "v": "g"}, {"g": "0-1"}, cfg)["g"]
    assert a["profiler"] == "llm" and a["profile"] == b["profile"]  # greedy: deterministic
    assert 0 < len(a["profile"].split()) <= 6  # generated, bounded by max_new_tokens
    assert set(a["profile"].split()) <= set(words)


def test_llm_profiler_needs_an_existing_local_path(tmp_path):
    df = events([("u", "1", "a", 1)])
    with pytest.raises(CoeaInputError, match="model directory not found"):
        build_profiles(df, {"u": "g"}, {"g": "0"}, ProfileConfig(kind="llm", model_path=str(tmp_path / "none")))
    with pytest.raises(ValueError, match="needs model_path"):
        ProfileConfig(kind="llm")
