"""Names in other scripts spelled in Latin letters as passports and newspapers print them, for the
PII bench's person names: the tables are the published systems, so no name is spelled the way a
detector was written for."""
from __future__ import annotations

import re
import unicodedata

# romanisation as passports and newspapers print it: Cyrillic after BGN/PCGN (Ukrainian and Bulgarian
# letters after their national systems), Greek after ELOT 743, Armenian after BGN/PCGN, Georgian after
# the national system of 2002; digraphs first
ROMAN_DIGRAPHS = {"ου": "ou", "ού": "ou", "ու": "u", "և": "ev"}
ROMAN = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґјљњџѓќѕ",
                 "a b v g d e yo zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya i yi ye g j lj nj dzh gj "
                 "kj dz".split()))
ROMAN.update({"ъ": "", "ь": ""})
ROMAN_LOCALE = {"uk_UA": {"г": "h", "и": "y", "х": "kh"}, "bg_BG": {"щ": "sht", "ъ": "a"}}
ROMAN.update(zip("αβγδεζηθικλμνξοπρσςτυφχψωάέήίόύώϊΐϋΰ",
                 "a v g d e z i th i k l m n x o p r s s t y f ch ps o a e i i o y o i i y y".split()))
ROMAN.update(zip("աբգդեզէըթժիլխծկհձղճմյնշոչպջռսվտրցփքօֆ",
                 "a b g d e z e y t zh i l kh ts k h dz gh ch m y n sh o ch p j r s v t r ts p k o f".split()))
ROMAN.update(zip("აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
                 "a b g d e v z t i k l m n o p zh r s t u p k gh q sh ch ts dz ts ch kh j h".split()))

# Korean after the Revised Romanization (2000): a syllable block is initial x medial x final jamo;
# family names as they are printed (Kim, Lee, Park), not letter by letter
HANGUL_INITIALS = "g kk n d tt r m b pp s ss - j jj ch k t p h".split()
HANGUL_MEDIALS = "a ae ya yae eo e yeo ye o wa wae oe yo u wo we wi yu eu ui i".split()
HANGUL_FINALS = "- k k k n n n t l k m l l l p l m p p t t ng t t k t p t".split()
KOREAN_FAMILY = {"김": "Kim", "이": "Lee", "박": "Park", "최": "Choi", "정": "Jung", "강": "Kang", "조": "Cho",
                 "윤": "Yoon", "장": "Jang", "임": "Lim", "오": "Oh", "신": "Shin", "권": "Kwon", "안": "Ahn",
                 "류": "Ryu", "노": "Noh", "우": "Woo"}
# Devanagari and Bengali after the Hunterian system, by offset in the block (the Indic blocks share
# one layout): consonants carry an "a" that a vowel sign or the virama replaces and that is not
# spoken at the end of a word; long vowels unmarked, as names are printed ("Narayan", "Basnet")
INDIC_BLOCKS = (0x0900, 0x0980, 0x0A80, 0x0B00)  # Devanagari, Bengali, Gujarati, Odia: one layout
INDIC_VOWELS = dict(zip(range(0x05, 0x15), "a a i i u u ri li e e e ai o o o au".split()))
INDIC_CONSONANTS = dict(zip(range(0x15, 0x3A), "k kh g gh n ch chh j jh ny t th d dh n t th d dh n n p ph b bh m y r "
                                                "r l l l v sh sh s h".split()))
INDIC_CONSONANTS.update({0x58: "q", 0x59: "kh", 0x5A: "g", 0x5B: "z", 0x5C: "r", 0x5D: "rh", 0x5E: "f", 0x5F: "y",
                         0x4E: "t"})
INDIC_SIGNS = dict(zip(range(0x3E, 0x4D), "a i i u u ri ri e e e ai o o o au".split()))
INDIC_NASALS = {0x01: "n", 0x02: "n", 0x03: "h"}
INDIC_VIRAMA = 0x4D
INDIC_CLUSTER_SPELLING = {"jny": "gy", "nyj": "nj", "nych": "nch"}  # as printed: "Gyan", "Anjali", "Kanchan"
INDIC_CLUSTERS = re.compile("|".join(INDIC_CLUSTER_SPELLING))


def latin(text: str) -> bool:
    return all(c in " .'’-" or unicodedata.name(c, "").startswith("LATIN") for c in text)


def romanise(name: str, locale: str) -> str:
    """A name in Cyrillic, Greek, Armenian, Georgian, Hangul, Devanagari or Bengali script in the
    Latin letters of the systems above, each part capitalised ("Кинцурашвили" -> "Kintsurashvili",
    "성민" -> "Seongmin", "बस्नेत" -> "Basnet"); Latin text unchanged."""
    if latin(name):
        return name
    if any("\uac00" <= c <= "\ud7a3" for c in name):
        text = " ".join(hangul_word(word) for word in name.split())
    elif any(block <= ord(c) < block + 0x80 for c in name for block in INDIC_BLOCKS):
        text = " ".join(indic_word(word) for word in name.split())
    else:
        table, text = {**ROMAN, **ROMAN_LOCALE.get(locale, {})}, name.lower()
        for digraph, latin_letters in ROMAN_DIGRAPHS.items():
            text = text.replace(digraph, latin_letters)
        text = "".join(table.get(c, c) for c in text)
    return re.sub(r"[^\W\d_]+", lambda m: m.group().capitalize(), text)


def hangul_word(word: str) -> str:
    """One Korean name: a one-syllable family name as printed, otherwise syllable by syllable."""
    if word in KOREAN_FAMILY:
        return KOREAN_FAMILY[word]
    letters = []
    for c in word:
        index = ord(c) - 0xAC00
        if not 0 <= index < 11172:
            letters.append(c)
            continue
        initial, medial, final = index // 588, index % 588 // 28, index % 28
        letters += [HANGUL_INITIALS[initial], HANGUL_MEDIALS[medial], HANGUL_FINALS[final]]
    return "".join(letter for letter in letters if letter != "-")


def indic_word(word: str) -> str:
    """One word of Devanagari or Bengali: consonants with their inherent "a" unless a vowel sign or
    the virama follows, the word's last inherent "a" silent."""
    out, pending = [], False
    for c in word:
        block = next((b for b in INDIC_BLOCKS if b <= ord(c) < b + 0x80), None)
        if block is None:
            continue  # joiners
        offset = ord(c) - block
        if offset in INDIC_SIGNS or offset == INDIC_VIRAMA:
            out.append(INDIC_SIGNS.get(offset, ""))
            pending = False
            continue
        if pending:
            out.append("a")
        pending = offset in INDIC_CONSONANTS
        out.append(INDIC_CONSONANTS.get(offset) or INDIC_VOWELS.get(offset) or INDIC_NASALS.get(offset, ""))
    return INDIC_CLUSTERS.sub(lambda m: INDIC_CLUSTER_SPELLING[m.group()], "".join(out))
