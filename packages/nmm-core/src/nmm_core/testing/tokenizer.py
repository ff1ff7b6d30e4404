"""What every tiny-twin builder shares: a locally trained BPE tokenizer, and the save step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Words a twin is likely to meet (demo shapes, charts, pathology, memes): any text still
# tokenizes, since the byte alphabet is always in the vocabulary; these just keep sequences short.
_CORPUS = (
    "What colour is the circle? What colour is the square? What colour is the triangle?",
    "How many squares are there? How many circles are there? How many triangles are there?",
    "What shape is the red object? What shape is the blue object? Answer with one word.",
    "red green blue yellow purple orange white black circle square triangle shape colour",
    "zero one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9 10 100 1000 % .",
    "What is the value of the largest bar? Which year had the lowest value? chart bar line pie",
    "Answer with a single word or number. What is the difference between the two values?",
    "yes no Is there a tumour in this image? what is present? where are the cells located?",
    "What is the meaning of this meme? The title of the post is When you finally understand",
    "User Assistant USER ASSISTANT system user assistant You are a helpful assistant.",
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions.",
)


def build_bpe_tokenizer(
    *,
    special_tokens: Sequence[str],
    vocab_size: int = 512,
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    unk_token: str | None = None,
    add_bos: bool = False,
    chat_template: str | None = None,
    extra_corpus: Iterable[str] = (),
    extra_attributes: dict[str, str] | None = None,
):
    """Train a byte-level BPE on a small built-in corpus and wrap it as a transformers tokenizer.

    Special tokens take the first ids, in the order given. With `add_bos`, every encoding starts
    with `bos_token`, as Llama's and OPT's tokenizers do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(_CORPUS) + list(extra_corpus)
    tok.train_from_iterator(corpus * 4, trainer)
    if add_bos:
        assert bos_token is not None, "add_bos needs a bos_token"
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[(bos_token, bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        **(extra_attributes or {}),
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def save_twin(model_cls, config, processor, out_dir, *, seed: int, pad_token_id: int, eos_token_id: int):
    """Build `model_cls(config)` with seeded random weights; save it with `processor` to `out_dir`."""
    import torch

    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.pad_token_id = pad_token_id
    model.generation_config.eos_token_id = eos_token_id
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return model


# The text decoder of every tiny twin: two layers of width 64 and four heads, trained in seconds
# on a CPU. Its initializer_range is wider than the real 0.02: with random weights at that scale
# the head cannot produce a confident answer, and a tiny LoRA cannot lower the loss.
TINY_TEXT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 1024,
             "initializer_range": 0.1}
