"""Build a tiny Llama-architecture model and a BPE tokenizer trained on synthetic problems, saved to a directory."""
from __future__ import annotations

import json
from pathlib import Path

from mathforge.testing import synthetic

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = ("{% for m in messages %}{{ '### ' + m['role'] + ':\n' + m['content'] + '\n\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %}")


def corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Training text for the tokenizer: synthetic questions and solutions in the RFT prompt format."""
    return [synthetic.PROMPT.format(query=row["question"]) + " " + row["answer"]
            for row in synthetic.problems(n, seed)]


def train_tokenizer(texts: list[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer that splits digits, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, hidden: int = 64, layers: int = 2, heads: int = 4,
                     vocab_size: int = 512, max_positions: int = 1024, seed: int = 0,
                     texts: list[str] | None = None) -> Path:
    """Write tokenizer (trained on `texts`, default: synthetic problems) + randomly initialised LlamaForCausalLM
    (+ a marker file) to `out_dir`; returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts or corpus(seed=seed), vocab_size)
    tokenizer.save_pretrained(out_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    (out_dir / "mathforge-tiny.json").write_text(json.dumps(
        {"hidden": hidden, "layers": layers, "heads": heads, "vocab_size": len(tokenizer), "seed": seed,
         "parameters": sum(p.numel() for p in model.parameters())}, indent=1))
    return out_dir


def ensure_tiny_model(out_dir: str | Path) -> Path:
    """Build the tiny model at `out_dir` unless a finished one is already there."""
    out_dir = Path(out_dir)
    if (out_dir / "mathforge-tiny.json").exists():
        return out_dir
    return build_tiny_model(out_dir)
