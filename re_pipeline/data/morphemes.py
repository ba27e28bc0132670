"""Korean morphemes from Kiwi. Morpheme spacing (`markers.morphemes`): a space at every Korean morpheme boundary Kiwi finds inside a
written word, so the offline tokenizer learns and reads morpheme pieces (이순신은 -> 이순신 은, 쓰고 -> 쓰 고),
as KLUE's own tokenizers were morpheme-aware. Entity words are never split: boundaries inside them are
skipped, and their offsets move with the inserted spaces.

Kiwi (`kiwipiepy`, a maintained Korean morphological analyzer whose model ships as a package) finds the
boundaries and the tagged morphemes of the TF-IDF morpheme view; results are cached per text for the life of
the process, and the model is loaded again only when a new text needs it.
"""

from __future__ import annotations

from functools import cache

from .schema import Example, edit


@cache
def _kiwi():
    from kiwipiepy import Kiwi  # loads a 90 MB model: only when morpheme spacing is on

    return Kiwi()


_ANALYSES: dict[str, tuple[tuple[str, str, int, int], ...]] = {}


def analyses(sentences: list[str]) -> list[tuple[tuple[str, str, int, int], ...]]:
    """Kiwi's morphemes of each sentence: (form, tag, start, length) with character offsets."""
    todo = [s for s in dict.fromkeys(sentences) if s not in _ANALYSES]
    if todo:  # the model loads only for sentences not yet analysed
        for sentence, tokens in zip(todo, _kiwi().tokenize(todo)):
            _ANALYSES[sentence] = tuple((t.form, t.tag, t.start, t.len) for t in tokens)
    return [_ANALYSES[s] for s in sentences]


def analyse_then_unload(sentences: list[str]) -> None:
    """Analyse `sentences` now, then unload Kiwi's model (about 0.5 GiB resident) until a sentence not yet analysed
    needs it: a TF-IDF run analyses all its rows first, so the model is gone before the solver's memory peaks."""
    analyses(sentences)
    _kiwi.cache_clear()


def boundaries(sentences: list[str]) -> list[tuple[int, ...]]:
    """Positions inside a written word (not after whitespace) where Kiwi starts a new morpheme."""
    out = []
    for sentence, tokens in zip(sentences, analyses(sentences)):
        starts = {start for _, _, start, length in tokens if 0 < start < len(sentence) and length > 0}
        out.append(tuple(sorted(p for p in starts if not sentence[p - 1].isspace() and not sentence[p].isspace())))
    return out


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


def entity_morphemes(examples: list[Example]) -> list[str]:
    """Each row's sentence as Kiwi's form/TAG morphemes, space-separated, those overlapping the subject or the
    object wrapped in role-and-type tags: "<S:PER> 이순신/NNP </S> 은/JX ..." (the TF-IDF morpheme view). The
    sentence is analysed whole, so particles keep their context."""
    out = []
    for ex, tokens in zip(examples, analyses([ex.sentence for ex in examples])):
        spans = [(ex.subject, "S"), (ex.object, "O")]
        words, current = [], None
        for form, tag, start, length in tokens:
            end = start + max(length, 1) - 1
            role = next(((e, r) for e, r in spans if start <= e.end and end >= e.start), None)
            if role != current:
                if current is not None:
                    words.append(f"</{current[1]}>")
                if role is not None:
                    words.append(f"<{role[1]}:{role[0].type}>")
                current = role
            words.append(f"{form}/{tag}")
        if current is not None:
            words.append(f"</{current[1]}>")
        out.append(" ".join(words))
    return out
