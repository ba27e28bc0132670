"""Choosing the Korean particle (조사) that fits a word: 이/가, 은/는, 을/를, 과/와, 이다/다, 으로/로.

The choice depends on how the word's last sound is *read*, not written:

* Hangul syllable: its final consonant (받침), via `hgtk.letter.decompose`.
* Digits: the last word of the Sino-Korean reading of the trailing number (commas
  allowed): 1988 → 팔 (ㄹ), 2002 → 이, 10 → 십, 100 → 백, 1000 → 천, 100000 → 십만 → 만,
  10^8 → 억, 10^12 → 조, 0 → 영. Digits after a decimal point are read as an integer too
  ("2.50" → 오십 rather than 오영); the particle chosen is the same.
* Latin letters, all capitals (an acronym: KBS, LG, IBM): the Korean name of the last
  letter. Only L (엘), M (엠), N (엔) and R (알) end in a consonant; Z is read 지.
* Latin letters, other case (read as a word: Apple, iPhone, Road): a heuristic on the
  spelling. "-ng" → ㅇ; "-l/-m/-n", also before a silent final e ("Apple", "Phone", "Game"),
  → ㄹ/ㅁ/ㄴ; "-ck", and "-k/-p/-t" right after a single vowel letter ("Kodak", "Robot"),
  → ㄱ/ㅂ/ㅅ; anything else ends in a vowel sound (Korean adds 으: "Road" 로드, "Mike"
  마이크, "Microsoft" 소프트). Limits: spelling is not pronunciation, so e.g. "Book" (북)
  and "Web" (웹) come out as vowel endings.
* Trailing punctuation, brackets, quotes and spaces are skipped: "《Abbey Road》" is read as
  "Road", "삼성전자(주)" as "주".

Anything else (Hanja, kana, other scripts) is undecidable: `final_jong` returns None, and
`attach` falls back to the last Hangul syllable of the word ("도쿄(東京)" → 쿄), or, with no
Hangul at all, to the form used after a consonant (이, 은, 을, 과, 이다, 으로).
"""

from __future__ import annotations

import re

import hgtk

# Each pair: (form after a final consonant, form after a vowel).
_PAIRS: tuple[tuple[str, str], ...] = (
    ("이", "가"),
    ("은", "는"),
    ("을", "를"),
    ("과", "와"),
    ("이다", "다"),
    ("으로", "로"),
)
_PAIR_OF: dict[str, tuple[str, str]] = {form: pair for pair in _PAIRS for form in pair}

# Forms `particle_after` looks for, longest first.
AFTER_ENTITY_FORMS: tuple[str, ...] = ("으로", "이", "가", "은", "는", "을", "를", "와", "과", "로")

# Final consonant of the Sino-Korean reading: 영 일 이 삼 사 오 육 칠 팔 구.
_DIGIT_JONG = ("ㅇ", "ㄹ", "", "ㅁ", "", "", "ㄱ", "ㄹ", "ㄹ", "")
_SMALL_UNIT_JONG = ("ㅂ", "ㄱ", "ㄴ")  # 십 백 천: 1-3 trailing zeros
_BIG_UNIT_JONG = ("ㄴ", "ㄱ", "", "ㅇ")  # 만 억 조 경: each 4 trailing zeros
_LETTER_NAME_JONG = {"L": "ㄹ", "M": "ㅁ", "N": "ㄴ", "R": "ㄹ"}  # every other letter name ends in a vowel
_ENDING_JONG = {"l": "ㄹ", "m": "ㅁ", "n": "ㄴ", "k": "ㄱ", "p": "ㅂ", "t": "ㅅ"}
_VOWEL_LETTERS = "aeiou"


def _is_syllable(char: str) -> bool:
    return "가" <= char <= "힣"


def _number_jong(digits: str) -> str | None:
    """Final consonant of a non-negative integer read in Sino-Korean; None past 경 (10^16)."""
    digits = digits.lstrip("0")
    if not digits:
        return _DIGIT_JONG[0]
    zeros = len(digits) - len(digits.rstrip("0"))
    if zeros >= 4:  # the lower 4-digit groups are silent: the reading ends in the unit (만, 억, ...)
        return _BIG_UNIT_JONG[zeros // 4 - 1] if zeros // 4 <= len(_BIG_UNIT_JONG) else None
    return _SMALL_UNIT_JONG[zeros - 1] if zeros else _DIGIT_JONG[int(digits[-1])]


def _latin_jong(word: str) -> str:
    """Final consonant of a run of Latin letters: letter name for acronyms, spelling heuristic otherwise."""
    if word.isupper():
        return _LETTER_NAME_JONG.get(word[-1], "")
    w = word.lower()
    if w.endswith("ng"):
        return "ㅇ"
    if len(w) > 2 and w[-1] == "e" and w[-2] in "lmn":
        w = w[:-1]
    if w[-1] in "lmn":
        return _ENDING_JONG[w[-1]]
    if w.endswith("ck"):
        return "ㄱ"
    single_vowel_before = len(w) > 1 and w[-2] in _VOWEL_LETTERS and (len(w) < 3 or w[-3] not in _VOWEL_LETTERS)
    return _ENDING_JONG[w[-1]] if w[-1] in "kpt" and single_vowel_before else ""


def final_jong(word: str) -> str | None:
    """The final consonant jamo of `word` as read aloud, "" for a vowel ending, None if undecidable."""
    core = re.sub(r"[\W_]+$", "", word)
    if not core:
        return None
    last = core[-1]
    if _is_syllable(last):
        return hgtk.letter.decompose(last)[2]
    if last.isdecimal():
        return _number_jong(re.search(r"\d[\d,]*$", core).group().replace(",", ""))
    if last.isascii() and last.isalpha():
        return _latin_jong(re.search(r"[A-Za-z]+$", core).group())
    return None


def has_final_consonant(word: str) -> bool | None:
    """Whether `word`, read aloud, ends in a consonant; None if undecidable."""
    jong = final_jong(word)
    return None if jong is None else jong != ""


def _pair(particle: str) -> tuple[str, str]:
    """The pair named by any spelling: "이", "가", "이/가", "이(가)", "(으)로"."""
    for form in re.split(r"[/()]", particle):
        if form in _PAIR_OF:
            return _PAIR_OF[form]
    raise ValueError(f"unknown particle {particle!r}; expected one of {sorted(_PAIR_OF)}")


def attach(word: str, particle: str) -> str:
    """`word` followed by the form of `particle`'s pair that fits it ("비틀즈", "이" → "비틀즈가")."""
    consonant_form, vowel_form = _pair(particle)
    jong = final_jong(word)
    if jong is None:
        syllables = [char for char in word if _is_syllable(char)]
        jong = hgtk.letter.decompose(syllables[-1])[2] if syllables else None
    if jong == "" or (jong == "ㄹ" and consonant_form == "으로"):
        return word + vowel_form
    return word + consonant_form


def particle_after(sentence: str, end: int) -> str | None:
    """The particle form starting right after `sentence[end]` (inclusive entity end), longest first, or None."""
    rest = sentence[end + 1 :]
    return next((form for form in AFTER_ENTITY_FORMS if rest.startswith(form)), None)
