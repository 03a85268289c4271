"""`prose_only`: word-statistics rules judge the prose of technical pages, not their code."""
from __future__ import annotations

from instruct.filters.c4 import C4
from instruct.filters.fineweb import FineWeb
from instruct.filters.gopher import GopherQuality
from instruct.filters.language import Language
from instruct.filters.prose import is_prose, prose_text

PROSE = ("The connection parameters are read from the service file when the option is given. "
         "Each parameter has a default that the environment can override, and the client reports "
         "which value it used. This makes it easy to point the same program at another server. "
         "The manual lists every parameter with its type and its default value. "
         "Most users never need to change more than the host and the port of the server.")
CODE = "\n".join(["$ psql -h localhost -p 5432 -U postgres mydb", "SELECT oid, relname FROM pg_class WHERE relkind = 'r';",
                  "    for (i = 0; i < n; i++) { total += values[i]; }", "-d pattern", "--database=pattern",
                  "oid\toid\tRow identifier", "  x = {\"key\": [1, 2, 3]}"] * 6)
PAGE = PROSE + "\n\n" + CODE + "\n\n" + PROSE.replace("connection", "session")


def test_lines_are_split_into_prose_and_code():
    assert is_prose(PROSE)
    assert not any(is_prose(line) for line in CODE.split("\n"))
    assert prose_text(PAGE) == PROSE + "\n\n" + PROSE.replace("connection", "session")
    assert prose_text(PAGE, paragraphs=False).count("\n") == 1


def test_gopher_alpha_ratio_on_prose_only_keeps_a_code_heavy_manual_page():
    assert GopherQuality().judge(PAGE)[0] == "gopher_below_alpha_threshold"
    reason, scores = GopherQuality(prose_only=True).judge(PAGE)
    assert reason is None and scores["alpha_words_ratio"] > 0.8
    # the other side: a page that is code only has no prose words left to pass on
    assert GopherQuality(prose_only=True).judge(CODE)[0] == "gopher_short_doc"
    # and prose below the (relaxed docs) alpha threshold still fails
    numbers = " ".join(f"value {i}, {i + 1}; {i * 2}." for i in range(40))
    assert GopherQuality(prose_only=True, min_alpha_words_ratio=0.65).judge(numbers)[0] is not None


def test_c4_keeps_code_lines_verbatim_and_judges_prose_sentences():
    step = C4(prose_only=True, filter_curly_bracket=False, min_num_sentences=3)
    assert "for (i = 0" not in C4().clean(PAGE)[0]  # plain C4 strips the code sample from the page
    cleaned, reason, scores, _ = step.clean(PAGE)
    assert reason is None and "    for (i = 0; i < n; i++) { total += values[i]; }" in cleaned
    assert scores["removed_lines"] == {}
    assert step.clean(CODE)[1] == "c4_too_few_sentences"  # code alone: no sentences
    assert C4(prose_only=True).clean(PROSE + "\nUse {braces} in a sentence like this one.")[1] == "c4_curly_bracket"


def test_fineweb_line_rules_on_prose_lines():
    page = "\n".join(PROSE.split(". ")[:1]) + ".\n" + CODE
    assert FineWeb().judge(page)[0] is not None
    assert FineWeb(prose_only=True).judge(page)[0] is None
    repeated = "\n".join(["This sentence is repeated on the page."] * 5 + [PROSE])
    assert FineWeb(prose_only=True).judge(repeated)[0] == "fineweb_char_dup_ratio"
    assert FineWeb(prose_only=True, char_duplicates_ratio=0.5).judge(repeated)[0] is None


def test_language_on_prose_lines():
    page = PROSE.split(". ")[0] + ".\n" + CODE
    assert Language(prose_only=True).ensure_setup().judge(page)[0] is None
    assert Language(prose_only=True).ensure_setup().judge(CODE + "\nDie Verbindung wird beim Start des Programms aus der "
                                                         "Dienstdatei gelesen und danach nicht mehr geändert.")[0] is not None
