"""PREFERENCE rows from the formats people have: TRL, HH-RLHF, UltraFeedback, K-way rankings."""
import itertools

import pytest

from instruct.preferences import PairStats, detect_preference_format, to_preferences, to_trl
from instruct.schema import PREFERENCE_SCHEMA, SchemaError, preferences_table, schema_kind

USER = [{"role": "user", "content": "Name a prime."}]


def test_trl_plain_and_conversational_give_the_same_pair():
    plain = to_preferences({"prompt": "Name a prime.", "chosen": "7", "rejected": "8"})[0]
    chat = to_preferences({"prompt": USER, "chosen": [{"role": "assistant", "content": "7"}],
                           "rejected": [{"role": "assistant", "content": "8"}]})[0]
    assert plain["prompt"] == chat["prompt"] == USER
    assert plain["chosen"] == [{"role": "assistant", "content": "7"}]
    assert plain["id"] == chat["id"]  # content ids ignore the input's spelling


def test_trl_implicit_prompt_is_the_shared_prefix():
    chosen = USER + [{"role": "assistant", "content": "7"}]
    rejected = USER + [{"role": "assistant", "content": "8"}]
    pair = to_preferences({"chosen": chosen, "rejected": rejected})[0]
    assert pair["prompt"] == USER and pair["rejected"][0]["content"] == "8"


def test_hh_rlhf_full_text_splits_at_the_last_shared_user_turn():
    prefix = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a prime."
    record = {"chosen": prefix + "\n\nAssistant: 7", "rejected": prefix + "\n\nAssistant: 8"}
    assert detect_preference_format(record) == "hh"
    pair = to_preferences(record)[0]
    assert [m["role"] for m in pair["prompt"]] == ["user", "assistant", "user"]
    assert pair["chosen"] == [{"role": "assistant", "content": "7"}]


def test_ultrafeedback_pairs_every_margin_and_counts_ties():
    record = {"instruction": "Name a prime.", "completions": [
        {"response": "7", "overall_score": 9.0, "model": "a"}, {"response": "8", "overall_score": 2.0},
        {"response": "9", "overall_score": 2.0}]}
    stats = PairStats()
    pairs = to_preferences(record, stats=stats)
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("7", "8"), ("7", "9")]
    assert stats.pairs == 2 and stats.skipped == {"tie": 1}
    assert '"margin": 7.0' in pairs[0]["meta"] and '"chosen_model": "a"' in pairs[0]["meta"]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_k_way_ranking_gives_all_k_choose_2_pairs_best_first(k):
    ranking = [f"answer {i}" for i in range(k)]
    pairs = to_preferences({"id": "q", "prompt": "Rank these.", "ranking": ranking})
    assert len(pairs) == len(list(itertools.combinations(range(k), 2)))
    for pair in pairs:  # the chosen answer is always ranked above the rejected one
        assert ranking.index(pair["chosen"][0]["content"]) < ranking.index(pair["rejected"][0]["content"])
    assert len({p["id"] for p in pairs}) == len(pairs)


def test_ranks_field_orders_responses():
    pairs = to_preferences({"prompt": "p", "responses": ["worst", "best", "mid"], "ranks": [3, 1, 2]})
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("best", "mid"), ("best", "worst"), ("mid", "worst")]


@pytest.mark.parametrize("record, message", [
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "p", "ranking": ["only one"]}, "at least two"),
    ({"prompt": "p", "responses": ["a", "b"], "ranks": [1, 1]}, "share rank"),
    ({"text": "no preference here"}, "is not a TRL"),
    ({"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}, "user message"),
])
def test_bad_records_are_one_line_schema_errors(record, message):
    with pytest.raises(SchemaError, match=message):
        to_preferences(record)


def test_table_round_trip_and_trl_export():
    pairs = to_preferences({"prompt": "Name a prime.", "chosen": "7", "rejected": "8"})
    table = preferences_table(pairs)
    assert table.schema == PREFERENCE_SCHEMA and schema_kind(table.schema) == "PREFERENCE"
    row = table.to_pylist()[0]
    assert to_preferences(row) == pairs  # our own rows pass through unchanged
    assert to_trl(row) == {"prompt": USER, "chosen": [{"role": "assistant", "content": "7"}],
                           "rejected": [{"role": "assistant", "content": "8"}]}
