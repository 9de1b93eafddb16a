"""benchmarks/analysis_bag.py: the bag-of-categories MLP learns which category follows a short-term set from
the N-LLM's SFT cuts (context, targets), one example per target."""

import torch

from benchmarks.analysis_bag import multi_hot, train_bag_mlp
from coea.llm.prompts import PromptContext


def test_the_bag_mlp_learns_which_category_follows_a_short_term_set():
    cats = ["a", "b", "c", "d", "e"]
    rule = {("a",): "b", ("c",): "d", ("a", "c"): "e"}  # the pair predicts what neither member does
    cuts = [(PromptContext((1,), "", short), [target]) for short, target in rule.items() for _ in range(300)]
    net = train_bag_mlp(cuts, cats, epochs=20, hidden=32, seed=0)
    with torch.no_grad():
        top = net(multi_hot([[0], [2], [0, 2]], len(cats))).argmax(dim=-1).tolist()
    assert [cats[i] for i in top] == ["b", "d", "e"]


def test_multi_hot_marks_each_rows_columns():
    assert multi_hot([[0, 2], []], 3).tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
