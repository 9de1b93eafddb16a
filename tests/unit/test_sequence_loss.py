"""``sequence_loss``: SFT also trains the prompt's last history categories (the ``seq:`` section) as next tokens."""

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from coea.llm.prompts import PromptContext, category_text, context_text, novelty_prompt, sequence_tail_span
from coea.llm.sft import tokenize_examples, train_sft
from coea.llm.sft_config import LlmConfig, SftDataConfig, SftTrainConfig
from tests.helpers import tiny_causal_lm


def _ctx(sequence, items=(), short=("a",)):
    return PromptContext(csid=(1, 0), profile="Group 1-0", short_term=tuple(short), sequence=tuple(sequence),
                         items=tuple(items))


def test_the_span_covers_the_last_n_words_of_the_seq_section_whatever_follows_it():
    seq = ("Drama", "Comedy|Romance", "seq:", "recent:", "Sci Fi")  # names that read as markers are escaped
    for items in ((), ("1193", "661")):
        prompt = novelty_prompt(_ctx(seq, items, short=("recent:", "items:")))
        start, end = sequence_tail_span(prompt, 2)
        assert prompt[start:end].split(" ") == [category_text("recent:"), category_text("Sci Fi")]
        start, end = sequence_tail_span(prompt, 50)  # more than the section holds: all of it
        assert prompt[start:end].split(" ") == [category_text(c) for c in seq]
    assert sequence_tail_span(novelty_prompt(_ctx(())), 3) is None  # no seq: section
    assert sequence_tail_span(novelty_prompt(_ctx(("Drama",))), 0) is None
    assert sequence_tail_span(context_text(_ctx(("Drama",)), with_group=False) + " novel:", 1) is not None


WORDS = ["group:", "<a_1>", "<b_0>", "profile:", "Group", "1-0", "seq:", "items:", "\\i1", "\\i2", "recent:", ";",
         "novel:", "a", "b", "c", "d", "e"]


@pytest.fixture
def tiny(tmp_path):
    torch.set_num_threads(1)
    path = tiny_causal_lm(tmp_path / "m", WORDS)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_tokenized_rows_label_the_last_seq_words_and_the_completion_only(tiny):
    _, tok = tiny
    prompt = novelty_prompt(_ctx(("a", "b", "c", "a"), items=("1", "2")))
    examples = [{"prompt": prompt, "completion": " d </s>"}, {"prompt": prompt, "completion": " e </s>"},
                {"prompt": novelty_prompt(_ctx(())), "completion": " d </s>"}]  # no section: the completion only
    plain = tokenize_examples(tok, examples, 64)
    rows = tokenize_examples(tok, examples, 64, sequence_loss=2)
    assert rows["input_ids"] == plain["input_ids"]
    words = prompt.split(" ")
    for labels, ids, completion in zip(rows["labels"], rows["input_ids"], ("d", "e"), strict=False):
        labelled = [tok.convert_ids_to_tokens(t) for t in labels if t != -100]
        assert labelled == ["c", "a", completion, "</s>"]  # the last two seq words, then the completion
        first = [i for i, t in enumerate(labels) if t != -100][0]
        assert first == words.index("items:") - 2 and ids[first] == labels[first]
    assert rows["labels"][2] == plain["labels"][2]
    fits = tokenize_examples(tok, examples[:1], len(words) + 2, sequence_loss=2)  # room for "d </s>": labelled
    assert [tok.convert_ids_to_tokens(t) for t in fits["labels"][0] if t != -100] == ["c", "a", "d", "</s>"]
    assert len(tokenize_examples(tok, examples[:1], len(words) + 1, sequence_loss=2)) == 0  # "d" only: left out
    # a chunk whose prompts have no seq: section: the completion only, with the warning (it raised IndexError:
    # a tokenizer called on no text; benchmarks/bench_trainer_overhead.py died of it, session 56)
    alone = tokenize_examples(tok, examples[2:], 64, sequence_loss=2)
    assert alone["labels"] == plain["labels"][2:]


def test_training_with_it_learns_the_history_order_the_completion_loss_alone_never_sees(tiny):
    """Every history reads ``a b c``: with ``sequence_loss`` the model learns that ``c`` follows ``a b`` inside the
    prompt; trained on the completions alone it does not."""
    import copy

    model, tok = tiny
    other = copy.deepcopy(model)
    examples = [{"prompt": novelty_prompt(_ctx(seq)), "completion": f" {t} </s>"}
                for seq, t in ((("d", "a", "b", "c"), "e"), (("e", "a", "b", "c"), "d"))] * 16
    cfg = SftTrainConfig(epochs=8, batch_size=8, lr=1e-2)
    train_sft(cfg, other, tok, examples)
    train_sft(replace(cfg, sequence_loss=3), model, tok, examples)
    probe = "group: <a_1> <b_0> profile: Group 1-0 seq: e a b"
    ids = tok(probe, return_tensors="pt")["input_ids"]
    c = tok.convert_tokens_to_ids("c")
    with torch.no_grad():
        p_seq = float(model(ids).logits[0, -1].softmax(-1)[c])
        p_plain = float(other(ids).logits[0, -1].softmax(-1)[c])
    assert p_seq > 0.3 and p_seq > 5 * p_plain  # measured: .57 against .016


def test_sequence_loss_is_a_count_and_never_more_than_the_section_holds():
    """The N-LLM's default labels 10 categories; a prompt without the ``seq:`` section (``llm.data.sequence: 0``,
    the ``short`` preset) trains on its completions alone, with no error to silence."""
    with pytest.raises(ValueError, match="sequence_loss must be >= 0"):
        SftTrainConfig(sequence_loss=-1)
    cfg = LlmConfig()
    assert cfg.novelty.sequence_loss == 10 and cfg.sft_for("novelty").sequence_loss == 10
    assert cfg.relevance.sequence_loss == 0 == cfg.sft_for("relevance").sequence_loss
    assert LlmConfig(data=SftDataConfig(sequence=0)).sft_for("novelty").sequence_loss == 0
    assert LlmConfig(data=SftDataConfig(sequence=4)).sft_for("novelty").sequence_loss == 4


def test_a_sub_word_tokenizer_labels_the_pieces_of_the_same_words():
    """With a pretrained-style byte-level BPE each category word is several pieces: the labelled range spells
    exactly the section's last words."""
    from coea.llm.sft import sequence_label_ranges
    from tests.unit.test_category_words import _byte_bpe

    tok = _byte_bpe()
    seq = ("Drama", "Comedy|Sci Fi", "Drama", "Sci Fi")
    prompt = novelty_prompt(_ctx(seq, items=("12",)))
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a, b = sequence_label_ranges(tok, {prompt: ids}, 3)[prompt]
    assert tok.decode(ids[a:b]).split() == [category_text(c) for c in seq[-3:]]
