"""The offline default tokenizer: a SentencePiece-style Unigram model trained on the task's own text.

Saved with `save_pretrained`, it reloads through `AutoTokenizer` as a fast XLM-R tokenizer
with identical ids (same special tokens and template as xlm-roberta). Unigram training is not
bit-reproducible (the trainer orders equal-score pieces by hash), so a trained tokenizer is an
artifact: cached by its inputs, saved in every run folder, and reused on resume.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import XLMRobertaTokenizerFast

# Characters the input formats and augmentations add (markers, type names, AEDA punctuation):
# always in the vocabulary, even when the task's sentences never contain them.
ALPHABET = list("@#^*<>[]/:.,!?;-()" + string.ascii_letters + string.digits)
SPECIAL = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"}


def train_tokenizer(
    sentences: Iterable[str], vocab_size: int = 16000, out_dir: str | Path | None = None, show_progress: bool = True
):
    """Train a Unigram tokenizer (XLM-R layout: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4); `show_progress`: the
    tokenizers library's own progress bar."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        unk_token="<unk>",
        initial_alphabet=ALPHABET,
        show_progress=show_progress,
    )
    tok.train_from_iterator(sentences, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, cls_token="<s>", sep_token="</s>", **SPECIAL)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast
