"""A deterministic toy English corpus and a byte-level BPE tokenizer trained on it (offline).

The smoke profile's tiny model learns from this text, so its residual stream carries real
structure; the byte-level alphabet lets the tokenizer encode any string, including the
fixtures other tests feed it.
"""

from __future__ import annotations

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# Ids match Gemma's (<pad>=0, <eos>=1, <bos>=2, <unk>=3), so code paths see familiar values.
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]
BOS_ID = 2

_WORDS = {
    "det": ["the", "a", "every", "one", "this", "that"],
    "adj": ["red", "small", "quiet", "heavy", "bright", "cold", "young", "old", "strange", "quantum"],
    "noun": [
        "cat", "dog", "teacher", "river", "city", "photon", "electron", "magnet", "engine", "garden",
        "student", "planet", "field", "wave", "market", "doctor", "storm", "crystal", "book", "song",
    ],
    "verb": ["sees", "moves", "heats", "measures", "follows", "finds", "pushes", "builds", "reads", "hears"],
    "prep": ["near", "under", "beside", "inside", "behind", "across"],
    "adv": ["slowly", "quickly", "again", "today", "carefully"],
}


def toy_corpus(n_sentences: int = 3000, seed: int = 0) -> list[str]:
    """Simple subject-verb-object sentences from a fixed grammar, three to a document."""
    rng = random.Random(seed)

    def phrase() -> str:
        words = [rng.choice(_WORDS["det"])]
        if rng.random() < 0.5:
            words.append(rng.choice(_WORDS["adj"]))
        words.append(rng.choice(_WORDS["noun"]))
        return " ".join(words)

    sentences = []
    for _ in range(n_sentences):
        parts = [phrase(), rng.choice(_WORDS["verb"]), phrase()]
        if rng.random() < 0.4:
            parts += [rng.choice(_WORDS["prep"]), phrase()]
        if rng.random() < 0.3:
            parts.append(rng.choice(_WORDS["adv"]))
        text = " ".join(parts)
        sentences.append(text[0].upper() + text[1:] + ".")
    return [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]


def toy_tokenizer(vocab_size: int, seed: int = 0) -> PreTrainedTokenizerFast:
    """Byte-level BPE with Gemma's special-token ids; adds BOS when add_special_tokens=True."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(toy_corpus(seed=seed), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", BOS_ID)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,  # TransformerLens reloads a tokenizer from the hub unless this is set
        padding_side="right",
    )
    assert wrapped.bos_token_id == BOS_ID, "special tokens must come first in the vocabulary"
    return wrapped
