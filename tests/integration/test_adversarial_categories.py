"""``coea evaluate --methods nllm_sft,dual_best_of_n`` on a CSV log whose categories are named like the LLMs'
control, template and CSID tokens (issue 14): it trains, decodes and scores without an error, serves full lists
of distinct categories, and the trained N-LLM ranks every name once. (The tiny one-epoch models give most users
the same top 5, as they do on ordinary names, so the lists are not compared across users.)"""

from __future__ import annotations

import json

import pandas as pd

from tests.helpers import coea
from tests.integration.test_short_histories import CONFIG, short_log

ISSUE = ["<unk>", "yes", "</s>", "<pad>", "<a_1>", "novel:", "recent:", "group:", "candidate:", ";"]  # issue 14's
MORE = ["Sci Fi", "x ; novel: y", "日本語 カテゴリ", "a" * 300, "\\=yes", "no", "<b_0>", "profile:", "<s>", "🎬 film"]


def test_evaluate_on_categories_named_like_tokens_gives_distinct_recommendations(tmp_path):
    import numpy as np

    from coea.llm.decode import CategoryIndex, rank_categories
    from coea.llm.models import load_bundle
    from coea.llm.prompts import PromptContext, novelty_prompt

    log = short_log()
    cats = sorted(log.category.unique())
    names = [*ISSUE, *MORE][:len(cats)]
    assert len(names) == len(cats) >= len(ISSUE) + 4
    log = log.assign(category=log.category.map(dict(zip(cats, names, strict=True))))
    log.to_csv(tmp_path / "log.csv", index=False)
    assert set(pd.read_csv(tmp_path / "log.csv", keep_default_na=False).category) == set(names)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(path=tmp_path / "log.csv").replace('"parquet:', '"csv:'))
    out = tmp_path / "run"
    res = coea("evaluate", "--config", str(cfg), "--out", str(out), "--methods", "nllm_sft,dual_best_of_n",
               "--k", "5")
    assert res.returncode == 0, res.stderr[-3000:]
    methods = json.loads((out / "metrics.json").read_text())["methods"]
    for name in ("nllm_sft", "dual_best_of_n"):
        assert methods[name]["Cov@5"] >= 5 / len(names) - 1e-9  # full lists of 5 distinct categories
    bundle = load_bundle(out / "llm" / "novelty")
    index = CategoryIndex(bundle.tokenizer, names)
    prompts = [novelty_prompt(PromptContext((0,), "fans", (a, b))) for a, b in [("yes", "</s>"), ("<unk>", ";")]]
    ranked = rank_categories(bundle.model, bundle.tokenizer, prompts, index, k=len(names))
    for row in ranked:  # every name once, each a finite log-probability
        assert sorted(n for n, _ in row) == sorted(names) and np.all(np.isfinite([s for _, s in row]))
    assert dict(ranked[0]) != dict(ranked[1])  # the adversarial names in the prompt reach the model
