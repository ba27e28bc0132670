"""Korean morphemes from Kiwi. Morpheme spacing (`markers.morphemes`): a space at every Korean morpheme boundary Kiwi finds inside a
written word, so the offline tokenizer learns and reads morpheme pieces (이순신은 -> 이순신 은, 쓰고 -> 쓰 고),
as KLUE's own tokenizers were morpheme-aware. Entity words are never split: boundaries inside them are
skipped, and their offsets move with the inserted spaces.

Kiwi (`kiwipiepy`, a maintained Korean morphological analyzer whose model ships as a package) finds the
boundaries and the tagged morphemes of the TF-IDF morpheme view; results are cached per text for the life of
the process.
"""

from __future__ import annotations

from functools import cache

from .schema import Example, edit


@cache
def _kiwi():
    from kiwipiepy import Kiwi  # loads a 90 MB model: only when morpheme spacing is on

    return Kiwi()


_BOUNDARIES: dict[str, tuple[int, ...]] = {}
_TOKENS: dict[str, str] = {}


def boundaries(sentences: list[str]) -> list[tuple[int, ...]]:
    """Positions inside a written word (not after whitespace) where Kiwi starts a new morpheme."""
    todo = [s for s in dict.fromkeys(sentences) if s not in _BOUNDARIES]
    for sentence, tokens in zip(todo, _kiwi().tokenize(todo)):
        starts = {t.start for t in tokens if 0 < t.start < len(sentence) and t.len > 0}
        _BOUNDARIES[sentence] = tuple(
            sorted(p for p in starts if not sentence[p - 1].isspace() and not sentence[p].isspace())
        )
    return [_BOUNDARIES[s] for s in sentences]


def space_sentences(sentences: list[str]) -> list[str]:
    """Sentences with a space at each morpheme boundary (the text TAPT and the tokenizer train on)."""
    out = []
    for sentence, cuts in zip(sentences, boundaries(sentences)):
        parts, pos = [], 0
        for cut in cuts:
            parts.append(sentence[pos:cut])
            pos = cut
        out.append(" ".join(parts + [sentence[pos:]]))
    return out


def space_examples(examples: list[Example]) -> list[Example]:
    """Examples with a space at each morpheme boundary outside their entity words, offsets moved."""
    out = []
    for ex, cuts in zip(examples, boundaries([ex.sentence for ex in examples])):
        inside = [(e.start, e.end) for e in (ex.subject, ex.object)]
        keep = [c for c in cuts if not any(start < c <= end for start, end in inside)]
        out.append(edit(ex, [(c, c, " ") for c in keep]) if keep else ex)
    return out


def morpheme_tokens(texts: list[str]) -> list[str]:
    """Each text as Kiwi's morphemes with their tags, space-separated: "이순신/NNP 은/JX ..." (the TF-IDF
    morpheme view)."""
    todo = [t for t in dict.fromkeys(texts) if t not in _TOKENS]
    for text, tokens in zip(todo, _kiwi().tokenize(todo)):
        _TOKENS[text] = " ".join(f"{t.form}/{t.tag}" for t in tokens)
    return [_TOKENS[t] for t in texts]
