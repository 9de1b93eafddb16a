"""benchmarks/analysis_prompt_lengths.py: token counts of prompts and of prompt + completion, as the SFT examples
are tokenized (no special token added: the completions carry their own end-of-sequence token). Only the counting
is tested here; the script's run over a DSIE fit is a measurement (README *The dual LLMs*)."""

from transformers import AutoTokenizer

from benchmarks.analysis_prompt_lengths import token_counts
from tests.helpers import tiny_causal_lm


def test_counts_are_the_prompts_and_the_whole_examples_tokens(tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_causal_lm(tmp_path / "m", ["recent:", "a", "b", ";", "novel:", "c"]))
    rows = [{"prompt": "recent: a b ; novel:", "completion": " c </s>"},
            {"prompt": "recent: ; novel:", "completion": " a b c </s>"}]
    prompt, whole = token_counts(tok, rows, "completion")
    assert prompt.tolist() == [5, 3] and whole.tolist() == [7, 7]
