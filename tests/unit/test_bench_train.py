"""The training-throughput benchmark's prompt rows (benchmarks/bench_train.py) train on the sections SFT writes."""

from coea.config import SplitConfig
from coea.data.split import chronological_split
from coea.llm.prompts import ITEMS_MARK, SEQ_MARK, category_name, item_text
from tests.helpers import events


def test_section_rows_show_each_users_last_events_and_items():
    from benchmarks.bench_train import _section_examples

    log = events([(f"u{i}", f"m{t % 5}", f"k{t}", t) for i in range(3) for t in range(12 + i)])
    split = chronological_split(log, SplitConfig(n_future=2, n_short=3, min_history=2))
    rows = _section_examples(split, 6, sequence=4, items=3)
    assert len(rows) == 6 and rows[0]["prompt"] == rows[3]["prompt"]  # users in turn (random labels)
    history = split.histories.interactions
    for row, user in zip(rows, ["u0", "u1", "u2"], strict=False):
        prompt = row["prompt"]
        seq = prompt.split(SEQ_MARK)[1].split(ITEMS_MARK)[0].split()
        shown = prompt.split(ITEMS_MARK)[1].split("recent:")[0].split()
        mine = history[history["user_id"] == user]
        assert [category_name(w) for w in seq] == mine["category"].tolist()[-4:]
        assert shown == [item_text(i) for i in mine["item_id"].tolist()[-3:]]
        assert prompt.endswith("novel:") and row["completion"].endswith("</s>")
    assert ITEMS_MARK not in _section_examples(split, 1, sequence=4, items=0)[0]["prompt"]
