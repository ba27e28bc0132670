import hgtk
import pytest
from hypothesis import given
from hypothesis import strategies as st

from re_pipeline.data.particles import attach, final_jong, has_final_consonant, particle_after

PAIRS = ("이/가", "은/는", "을/를", "과/와", "으로/로")

# word → expected forms for 이/가, 은/는, 을/를, 과/와, 으로/로
CONSONANT = "이 은 을 과 으로"
RIEUL = "이 은 을 과 로"
VOWEL = "가 는 를 와 로"
TABLE = {
    "비틀즈": VOWEL,
    "조지 해리슨": CONSONANT,
    "서울": RIEUL,
    "서울 ": RIEUL,
    "부산": CONSONANT,
    # numbers, read in Sino-Korean
    "0": CONSONANT,  # 영
    "1": RIEUL,  # 일
    "2": VOWEL,  # 이
    "3": CONSONANT,  # 삼
    "5": VOWEL,  # 오
    "6": CONSONANT,  # 육
    "7": RIEUL,  # 칠
    "1988": RIEUL,  # 팔
    "2002": VOWEL,  # 이
    "10": CONSONANT,  # 십
    "20": CONSONANT,  # 이십
    "100": CONSONANT,  # 백
    "1000": CONSONANT,  # 천
    "1,000": CONSONANT,  # 천
    "10000": CONSONANT,  # 만
    "100000": CONSONANT,  # 십만
    "1억": CONSONANT,
    "1000000000000": VOWEL,  # 일조
    "GPT-4": VOWEL,  # 사
    # acronyms: name of the last letter
    "KBS": VOWEL,  # 에스
    "SBS": VOWEL,
    "LG": VOWEL,  # 지
    "IBM": CONSONANT,  # 엠
    "URL": RIEUL,  # 엘
    "PR": RIEUL,  # 알, where the spelling heuristic would say vowel
    "AP": VOWEL,  # 피, where the spelling heuristic would say ㅂ
    "KBS2": VOWEL,  # 이
    # Latin words: spelling heuristic
    "Apple": RIEUL,  # 애플
    "Google": RIEUL,  # 구글
    "iPhone": CONSONANT,  # 아이폰
    "Game": CONSONANT,  # 게임
    "Samsung": CONSONANT,  # 삼성
    "Robot": CONSONANT,  # 로봇
    "Mike": VOWEL,  # 마이크
    "Microsoft": VOWEL,  # 마이크로소프트
    # trailing punctuation, brackets, quotes
    "《Abbey Road》": VOWEL,  # 로드
    "‘프린세스 프링’": CONSONANT,
    "삼성전자(주)": VOWEL,  # 주
    "“서울”": RIEUL,
    # undecidable: last Hangul syllable, else the consonant form
    "도쿄(東京)": VOWEL,
    "東京": CONSONANT,
}


@pytest.mark.parametrize(("word", "expected"), TABLE.items())
def test_table(word: str, expected: str) -> None:
    assert [attach(word, pair)[len(word) :] for pair in PAIRS] == expected.split()


@pytest.mark.parametrize(
    ("word", "jong"),
    [
        ("서울", "ㄹ"),
        ("비틀즈", ""),
        ("1988", "ㄹ"),
        ("10", "ㅂ"),
        ("100", "ㄱ"),
        ("1000", "ㄴ"),
        ("10000", "ㄴ"),
        ("100000000", "ㄱ"),
        ("0", "ㅇ"),
        ("KBS", ""),
        ("IBM", "ㅁ"),
        ("Samsung", "ㅇ"),
        ("東京", None),
        ("", None),
        ("...", None),
        ("1" + "0" * 20, None),
    ],
)
def test_final_jong(word: str, jong: str | None) -> None:
    assert final_jong(word) == jong


def test_has_final_consonant() -> None:
    assert has_final_consonant("부산") is True
    assert has_final_consonant("비틀즈") is False
    assert has_final_consonant("東京") is None


@pytest.mark.parametrize("spelling", ["이", "가", "이/가", "가/이", "이(가)"])
def test_any_spelling_names_the_pair(spelling: str) -> None:
    assert attach("비틀즈", spelling) == "비틀즈가"
    assert attach("해리슨", spelling) == "해리슨이"


def test_other_pairs() -> None:
    assert attach("서울", "(으)로") == "서울로"
    assert attach("부산", "로") == "부산으로"
    assert attach("비틀즈", "이다") == "비틀즈다"
    assert attach("해리슨", "다") == "해리슨이다"


def test_unknown_particle() -> None:
    with pytest.raises(ValueError):
        attach("서울", "의")


def test_particle_after() -> None:
    sentence = "비틀즈가 부산으로 갔고 서울로 왔다"
    assert particle_after(sentence, sentence.index("비틀즈") + 2) == "가"
    assert particle_after(sentence, sentence.index("부산") + 1) == "으로"
    assert particle_after(sentence, sentence.index("서울") + 1) == "로"
    assert particle_after(sentence, sentence.index("갔고") + 1) is None
    assert particle_after(sentence, len(sentence) - 1) is None


def test_swap_reattaches_particle() -> None:
    sentence, end = "비틀즈가 해체했다", 2
    form = particle_after(sentence, end)
    assert attach("조지 해리슨", form) + sentence[end + 1 + len(form) :] == "조지 해리슨이 해체했다"


HGTK_TYPES = {
    "이": hgtk.josa.I_GA,
    "은": hgtk.josa.EUN_NEUN,
    "을": hgtk.josa.EUL_REUL,
    "과": hgtk.josa.GWA_WA,
    "이다": hgtk.josa.IDA_DA,
    "으로": hgtk.josa.EURO_RO,
}
hangul_words = st.text(st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), min_size=1)


@given(word=hangul_words, particle=st.sampled_from(sorted(HGTK_TYPES)))
def test_hangul_matches_hgtk(word: str, particle: str) -> None:
    assert attach(word, particle) == hgtk.josa.attach(word, HGTK_TYPES[particle])


@given(prefix=st.text(), word=hangul_words, particle=st.sampled_from(PAIRS), suffix=st.text())
def test_particle_after_finds_attached_form(prefix: str, word: str, particle: str, suffix: str) -> None:
    attached = attach(word, particle)
    sentence = prefix + attached + suffix
    assert particle_after(sentence, len(prefix) + len(word) - 1) == attached[len(word) :]
