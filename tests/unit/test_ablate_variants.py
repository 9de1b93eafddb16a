"""`coea ablate`'s variant set: which configs each ablation row runs (no training here)."""

from dataclasses import replace
from pathlib import Path

import pytest

from coea.ablate import variant_configs
from coea.config import RunConfig, load_run_config, run_config_from_dict
from coea.errors import CoeaInputError
from coea.pco.config import RefreshKind, RewardKind, Update


def test_default_reward_reads_feedback_so_the_ablation_has_its_row():
    names = set(variant_configs(RunConfig(), extras=True))
    assert names == {"coea", "coea w/o KL", "coea w/o CSID", "coea alpha=0.1", "coea alpha=0.6",
                     "coea w/o full CSID", "coea + long-term summary", "coea w/o event sequence",
                     "coea w/o item sequence", "coea w/o feedback"}


def test_each_kl_row_carries_its_alpha_and_nothing_else_changes():
    """Audit, session 55: the rows were checked by name only, so rows that kept the run's own alpha (copies of
    ``coea``) passed, up to the ``coea ablate`` integration test."""
    cfg = RunConfig()
    configs = variant_configs(cfg)
    rows = {name: float(name.split("=")[1]) for name in configs if name.startswith("coea alpha=")}
    assert rows == {"coea alpha=0.1": 0.1, "coea alpha=0.6": 0.6}
    for name, alpha in {**rows, "coea w/o KL": 0.0}.items():
        row = configs[name]
        assert row.pco.dpo.alpha == alpha and replace(row.pco.dpo, alpha=cfg.pco.dpo.alpha) == cfg.pco.dpo, name
        assert replace(row.pco, dpo=cfg.pco.dpo) == cfg.pco and row.llm == cfg.llm, name


def test_prompt_variants_take_away_what_the_run_has_and_add_what_it_lacks():
    default = variant_configs(RunConfig(), extras=True)
    assert RunConfig().llm.data.full_csid and default["coea"].llm.data.full_csid  # the default prompt shows it
    assert not default["coea w/o full CSID"].llm.data.full_csid
    assert default["coea + long-term summary"].llm.data.long_term > 0
    assert default["coea w/o event sequence"].llm.data.sequence == 0 and default["coea"].llm.data.sequence > 0
    assert default["coea w/o item sequence"].llm.data.items == 0 and default["coea"].llm.data.items > 0
    assert "coea + event sequence" not in default and "coea + item sequence" not in default  # the default has both
    no_csid = default["coea w/o CSID"].llm.data
    assert not no_csid.with_group and not no_csid.full_csid  # w/o CSID: no group and no user code either
    cfg = run_config_from_dict({"llm": {"data": {"full_csid": False, "long_term": 3, "sequence": 0, "items": 0}}},
                               where="test")
    flipped = variant_configs(cfg, extras=True)
    assert flipped["coea + full CSID"].llm.data.full_csid and "coea w/o full CSID" not in flipped
    assert flipped["coea w/o long-term summary"].llm.data.long_term == 0 and "coea + long-term summary" not in flipped
    assert flipped["coea + event sequence"].llm.data.sequence > 0 and "coea w/o event sequence" not in flipped
    assert flipped["coea + item sequence"].llm.data.items > 0 and "coea w/o item sequence" not in flipped
    for name in ("coea + full CSID", "coea w/o long-term summary", "coea + event sequence",
                 "coea + item sequence"):  # only the one option
        assert flipped[name].pco == cfg.pco


def test_judged_reward_has_no_feedback_row():
    cfg = run_config_from_dict({"pco": {"reward": "serendipity"}}, where="test")
    assert "coea w/o feedback" not in variant_configs(cfg, extras=True)


def test_teacher_reward_adds_a_row_where_the_r_llm_judges():
    cfg = run_config_from_dict({"pco": {"reward": "teacher", "soft_preferences": True, "pairs_per_prompt": 10}},
                               where="test")
    configs = variant_configs(cfg, extras=True)
    assert "coea w/o feedback" not in configs  # the teacher reads no feedback
    judged = configs["coea w/o teacher"]
    assert judged.pco.reward is RewardKind.RELEVANCE and not judged.pco.soft_preferences  # soft labels need nats
    assert replace(judged.pco, reward=cfg.pco.reward, soft_preferences=True) == cfg.pco  # nothing else differs
    assert judged.llm == cfg.llm and configs["coea"].pco.reward is RewardKind.TEACHER
    assert "coea w/o teacher" not in variant_configs(RunConfig(), extras=True)  # feedback reward: no such row


def test_under_the_distill_update_the_r_llm_row_keeps_the_update_on_the_top_candidates():
    """Under ``pco.update: distill`` ``coea w/o teacher`` swaps the judge only: the R-LLM's log-odds drive the same
    fitted update (same passes, beta, rate), among the N-LLM's top 20 where the teacher read every unseen category
    (``candidates: null``). Session 47: swapping the update too (DPO at the preset's 20 epochs) had measured the DPO
    settings, not the judge (short view, test: .3328, KL to SFT 3.6)."""
    cfg = run_config_from_dict({"pco": {"reward": "teacher", "update": "distill", "propose": "top",
                                        "candidates": None}}, where="test")
    configs = variant_configs(cfg, extras=True)
    judged = configs["coea w/o teacher"].pco
    assert judged.reward is RewardKind.RELEVANCE and judged.update is Update.DISTILL and judged.candidates == 20
    assert replace(judged, reward=RewardKind.TEACHER, candidates=None) == cfg.pco
    assert configs["coea w/o KL"].pco.dpo.alpha == 0 and configs["coea w/o KL"].pco.update is Update.DISTILL
    short = variant_configs(load_run_config(Path("short")))  # alpha 0 already: no row that is coea itself
    assert "coea w/o KL" not in short and "coea alpha=0.4" in short
    assert short["coea w/o teacher"].pco.teacher_cooc_weight == 0  # the co-occurrence term is the teacher's
    kept = run_config_from_dict({"pco": {"reward": "teacher", "update": "distill", "candidates": 30}}, where="test")
    assert variant_configs(kept)["coea w/o teacher"].pco.candidates == 30
    with_ease = run_config_from_dict({"pco": {"reward": "teacher", "update": "distill", "teacher_ease_weight": 2.0}},
                                     where="test")
    assert variant_configs(with_ease)["coea w/o teacher"].pco.teacher_ease_weight == 0  # the EASE term too


def test_feedback_reward_adds_a_row_that_reads_no_feedback():
    cfg = run_config_from_dict({"pco": {"reward": "feedback", "refresh": "both", "dpo": {"nll": 1.0}}},
                               where="test")
    configs = variant_configs(cfg)
    judged = configs["coea w/o feedback"]
    assert judged.pco.reward is RewardKind.RELEVANCE and judged.pco.refresh is RefreshKind.PERIOD
    assert not judged.pco.uses_feedback  # neither the reward nor the R-LLM refresh reads a take-up
    assert judged.pco.dpo == cfg.pco.dpo and judged.llm == cfg.llm  # only the feedback differs
    assert cfg.pco.reward is RewardKind.FEEDBACK and configs["coea"].pco.reward is RewardKind.FEEDBACK
    hybrid = run_config_from_dict({"pco": {"reward": "hybrid"}}, where="test")
    assert variant_configs(hybrid)["coea w/o feedback"].pco.refresh is RefreshKind.AUTO  # auto -> period here
    assert variant_configs(hybrid)["coea w/o feedback"].pco.refresh_kind() is RefreshKind.PERIOD


def test_only_keeps_coea_and_the_named_variants_and_refuses_unknown_names():
    cfg = RunConfig()
    picked = variant_configs(cfg, only=["coea + long-term summary", "coea w/o KL"])
    assert list(picked) == ["coea", "coea w/o KL", "coea + long-term summary"]  # a prompt variant without extras
    assert picked["coea + long-term summary"].llm.data.long_term > 0 and picked["coea w/o KL"].pco.dpo.alpha == 0
    with pytest.raises(CoeaInputError, match=r"unknown ablation variant\(s\) \['coea w/o nothing'\]") as err:
        variant_configs(cfg, only=["coea w/o KL", "coea w/o nothing"])
    assert "coea w/o feedback" in err.value.fix and err.value.option == "--variants"


def test_without_the_group_in_the_prompts_the_csid_row_adds_it():
    """With ``llm.data.with_group: false`` the prompts show no code at all: `coea w/o CSID` was coea itself (its own
    row, same SFT pair) and `coea + full CSID` trained a pair on coea's very prompts, so its row measured SFT noise
    under a CSID label. Both are left out, and naming one says why; `coea + CSID` measures the codes instead (the
    short preset's ablation row): the group, its profile and the user's code where ``full_csid`` is on."""
    cfg = run_config_from_dict({"llm": {"data": {"with_group": False, "full_csid": False}}}, where="test")
    configs = variant_configs(cfg, extras=True)
    assert [n for n in configs if "CSID" in n] == ["coea + CSID"] and "coea + long-term summary" in configs
    added = configs["coea + CSID"]
    assert added.llm.data == replace(cfg.llm.data, with_group=True) and added.pco == cfg.pco  # the group alone
    with pytest.raises(CoeaInputError, match=r"\['coea w/o CSID'\] \(the config's prompts show no CSID.*\+ CSID"):
        variant_configs(cfg, only=["coea w/o CSID"])
    assert {"coea w/o CSID", "coea w/o full CSID"} <= set(variant_configs(RunConfig(), extras=True))
    assert "coea + CSID" not in variant_configs(RunConfig(), extras=True)
    short = load_run_config(Path("short"))  # with_group false, full_csid at its default (on): the code too
    row = variant_configs(short, only=["coea + CSID"])["coea + CSID"].llm
    assert row.data == replace(short.llm.data, with_group=True) and row.data.full_csid
    assert replace(row, data=short.llm.data) == short.llm  # nothing else of the LLMs changes


def test_under_the_distill_update_the_kl_row_takes_the_reference_out_of_the_target():
    """The distill update's KL to the SFT model sits inside its target, ref(c) exp(r(c) / beta), so its ``w/o KL``
    is ``coea w/o reference`` (``pco.reference: none``, alpha 0); the DPO step keeps its own ``w/o KL`` row."""
    from coea.pco.config import Reference

    short = variant_configs(load_run_config(Path("short")))
    row = short["coea w/o reference"].pco
    assert row.reference is Reference.NONE and row.dpo.alpha == 0
    assert replace(row, reference=Reference.SFT) == short["coea"].pco and short["coea"].pco.reference is Reference.SFT
    assert "coea w/o reference" not in variant_configs(RunConfig(), extras=True)
    for pco in ({"reference": "none"}, {"reference": "none", "update": "distill", "reward": "teacher",
                                        "dpo": {"alpha": 0.1}}):
        with pytest.raises((ValueError, CoeaInputError), match="reference none needs update distill"):
            run_config_from_dict({"pco": pco}, where="test")


def test_variants_with_prompt_variants_keeps_both():
    """Audit (session 53): `--variants "coea w/o KL" --prompt-variants` dropped the prompt rows without a word."""
    names = set(variant_configs(RunConfig(), extras=True, only=["coea w/o KL"]))
    prompts = {"coea w/o full CSID", "coea + long-term summary", "coea w/o event sequence", "coea w/o item sequence"}
    assert names == {"coea", "coea w/o KL", *prompts}
    assert set(variant_configs(RunConfig(), only=["coea w/o KL"])) == {"coea", "coea w/o KL"}


@pytest.mark.parametrize("source", [None, "short", "distil", "gpu", {"pco": {"reward": "feedback", "refresh": "both"}},
                                    {"pco": {"reward": "teacher", "update": "distill", "reference": "none",
                                             "dpo": {"alpha": 0.0}}}],
                         ids=["defaults", "short", "distil", "gpu", "feedback-both", "reference-none"])
def test_every_variant_is_a_config_the_loader_accepts(source):
    """Audit: the alpha rows set ``pco.dpo`` in place, so PcoConfig's cross-checks never saw the new alpha: under
    ``pco.reference: none`` (alpha 0 required) the ablation ran rows no config file could hold. Every variant must
    read back from its own dict; under reference none there are no alpha rows (no KL term to weigh)."""
    from coea.config import config_to_dict

    cfg = (run_config_from_dict(source, where="test") if isinstance(source, dict)
           else RunConfig() if source is None else load_run_config(Path(source)))
    configs = variant_configs(cfg, extras=True)
    for name, row in configs.items():
        assert run_config_from_dict(config_to_dict(row), where=name) == row, name
    if cfg.pco.reference.value == "none":
        assert not [n for n in configs if "alpha" in n or "KL" in n] and len(configs) > 1
        with pytest.raises(CoeaInputError, match=r"\['coea alpha=0.4'\] \(pco.reference none has no KL term"):
            variant_configs(cfg, only=["coea alpha=0.4"])
