"""Config of the two causal LMs (N-LLM and R-LLM); free of torch so that reading a config is cheap.

``base_model="scratch"`` (the default) builds a small Llama/Qwen2-architecture model from this config with a
word-level tokenizer built from the data: no pretrained weights are downloaded anywhere. A local directory path
loads a real pretrained model from disk (``local_files_only=True``) and, with ``lora=True``, wraps it in a LoRA
adapter: the very same training code then runs on a GPU cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coea.utils import check_seed

SCRATCH = "scratch"
ARCHITECTURES = ("llama", "qwen2")
EMBEDDING_INITS = ("random", "encoder")


@dataclass
class ModelConfig:
    """Which causal LM to build or load, and how it is adapted."""

    base_model: str = SCRATCH  # "scratch" or a LOCAL directory with a Hugging Face model + tokenizer
    architecture: str = "llama"  # scratch only: "llama" or "qwen2"
    hidden_size: int = 64  # scratch only: model width
    num_layers: int = 1  # scratch only: decoder blocks (1 is cheap enough for 2 N-LLM epochs; see sft_data)
    num_heads: int = 4  # scratch only: attention heads (hidden_size must be divisible)
    num_kv_heads: int = 2  # scratch only: key/value heads (grouped-query attention; divides num_heads)
    intermediate_size: int = 128  # scratch only: MLP width
    max_position_embeddings: int = 256  # scratch only: longest prompt + completion in tokens
    lora: bool = True  # pretrained only: train a LoRA adapter instead of all weights
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator (scale = alpha / r)
    lora_dropout: float = 0.05  # dropout on the LoRA branch
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    train_new_tokens: bool = True  # LoRA only: also train the embedding rows of the added CSID tokens
    seed: int = 0  # seeds the random initialisation (scratch weights, new embedding rows)
    # scratch only: "encoder" starts the category and item tokens' embeddings from the DSIE encoder's
    # (coea.llm.embedding_init); "random" (default) starts every row at random
    embedding_init: str = "random"

    @property
    def is_scratch(self) -> bool:
        return self.base_model == SCRATCH

    def __post_init__(self) -> None:
        if not self.base_model:
            raise ValueError("base_model is empty; use 'scratch' or a local model directory")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size",
                     "max_position_embeddings", "lora_r", "lora_alpha"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        self.lora_target_modules = list(self.lora_target_modules)
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules is empty; name at least one module, e.g. q_proj")
        check_seed("seed", self.seed)
        if self.embedding_init not in EMBEDDING_INITS:
            raise ValueError(f"embedding_init must be one of {EMBEDDING_INITS}, got {self.embedding_init!r}")
        if self.embedding_init == "encoder" and not self.is_scratch:
            raise ValueError("embedding_init: encoder applies to scratch models only (a pretrained tokenizer spells "
                             "names with sub-word pieces other words share); set it to random with a base_model")
