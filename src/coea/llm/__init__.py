"""The dual LLMs: tokenizer and model factory, prompts, SFT, decoding and scoring."""
