"""`instruct synth --method backtranslate | answer | preference` through the real `openai` client against
`instruct serve` (the scripted fake engine; the embedded SmolLM2 in one slow test): provenance, K samples,
resume after SIGKILL, position-swap judging, margins and ties, and a reward-model judge."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from instruct.io.shards import read_shards, write_table
from instruct.schema import documents_table, examples_table, load_meta
from instruct.serve.engines import FakeEngine
from instruct.serve.process import server_process
from instruct.serve.server import serve_in_thread
from instruct.synth.run import load_synth_recipe, run_synth

WORDS = ("river budget recipe sentence poem city number customer review email story planet garden song "
         "train letter market coffee winter school bridge animal doctor museum ticket kitchen").split()


def write_documents(path: Path, count: int = 8) -> list[dict]:
    """DOCUMENT shards whose texts mix short, fitting and over-long paragraphs."""
    import random

    rng = random.Random(0)
    rows = []
    for number in range(count):
        paragraphs = [" ".join(rng.choice(WORDS) for _ in range(rng.choice([5, 40, 90, 700]))) + "."
                      for _ in range(rng.randint(2, 6))]
        rows.append({"id": f"doc-{number}", "text": "\n\n".join(paragraphs), "source": "web",
                     "url_or_path": f"https://example.org/{number}", "meta": {}})
    write_table(documents_table(rows), path / "shards" / "part-0000.arrow")
    return rows


def write_examples(path: Path, count: int = 6) -> list[dict]:
    rows = [{"id": f"ex-{i}", "source": "t", "meta": {},
             "messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"Describe the {WORDS[i]} in one sentence."},
                          {"role": "assistant", "content": "An old answer."}]} for i in range(count)]
    write_table(examples_table(rows), path / "shards" / "part-0000.arrow")
    return rows


def synth(output: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "instruct", "synth", "--output", str(output), "--base-url", url,
               "--concurrency", "4", *args, "progress=false"]
    return subprocess.run(command, capture_output=True, text=True)


def stages(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())["counts"]["stages"]


@pytest.fixture(scope="module")
def fake_url(tmp_path_factory):
    with server_process("--engine", "fake") as url:
        yield url


def test_backtranslate_keeps_curated_pairs_with_provenance(tmp_path, fake_url):
    documents = {d["id"]: d for d in write_documents(tmp_path / "docs")}
    result = synth(tmp_path / "bt", fake_url, "--method", "backtranslate", "--documents", str(tmp_path / "docs"),
                   "--num", "50", "backtranslate.min_chars=100", "backtranslate.max_chars=1500")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_shards(tmp_path / "bt").to_pylist()
    counts = stages(tmp_path / "bt")
    assert rows and counts["curation"]["kept"] == len(rows)
    assert counts["curation"]["below_threshold"] > 0  # the fake curator scores 1-5 uniformly
    assert counts["passage"]["too_short"] > 0 and counts["passage"]["paragraph_too_long"] > 0
    assert counts["instruction"]["kept"] == sum(counts["curation"].values())
    for row in rows:
        meta = load_meta(row["meta"])
        document = documents[meta["document_id"]]
        passage = document["text"][meta["passage_start"]:meta["passage_end"]]
        assert row["messages"][1]["content"] == passage and 100 <= len(passage) <= 1500
        assert meta["url_or_path"] == document["url_or_path"] and meta["curation_score"] >= 4
        assert row["messages"][0]["role"] == "user" and row["messages"][0]["content"].strip()


def test_backtranslate_salvages_a_finished_request_and_asks_again_for_a_missing_score(tmp_path):
    """A small model's habits: it goes on after the request (cut at the token limit) and reasons past its
    score budget. A finished first paragraph is kept; a request cut mid-sentence is not; one follow-up turn
    per judgement without a score."""
    from instruct.serve.engines import ReplyRule

    ramble = " ".join(["and", "then"] * 60)
    rows = [{"id": f"doc-{tag}", "text": f"{tag} " + " ".join(WORDS * 2) + ".", "source": "web",
             "url_or_path": f"https://example.org/{tag}", "meta": {}} for tag in ("ALPHA", "BETA", "GAMMA")]
    write_table(documents_table(rows), tmp_path / "docs" / "shards" / "part-0000.arrow")
    engine = FakeEngine(replies=[
        ReplyRule("only your rating", ["Score: 5"]),
        ReplyRule(r"Instruction:\nHow does GAMMA", ["Score: 4 because it is focused."]),
        ReplyRule(r"Instruction:", ["The answer covers the request well " + ramble]),
        ReplyRule(r"ALPHA[\s\S]*User's request:", ["How does ALPHA work?\n\nSure! " + ramble]),
        ReplyRule(r"BETA[\s\S]*User's request:", ["Explain how BETA " + ramble]),
        ReplyRule(r"GAMMA[\s\S]*User's request:", ["How does GAMMA work?"]),
    ])
    data = {"method": "backtranslate", "documents": [str(tmp_path / "docs")], "output": str(tmp_path / "bt"),
            "num": 10, "progress": False, "backtranslate": {"min_chars": 50}}
    with serve_in_thread(engine) as server:
        data["client"] = {"base_url": server.base_url, "concurrency": 2}
        run_synth(load_synth_recipe(data, []), data)
    kept = {load_meta(r["meta"])["document_id"]: (r, load_meta(r["meta"])) for r in read_shards(tmp_path / "bt").to_pylist()}
    assert set(kept) == {"doc-ALPHA", "doc-GAMMA"}
    alpha, alpha_meta = kept["doc-ALPHA"]
    assert alpha["messages"][0]["content"] == "How does ALPHA work?" and alpha_meta["instruction_salvaged"]
    assert alpha_meta["curation_score"] == 5 and alpha_meta["score_followup"] == "Score: 5"
    gamma_meta = kept["doc-GAMMA"][1]
    assert gamma_meta["curation_score"] == 4 and "score_followup" not in gamma_meta
    assert "instruction_salvaged" not in gamma_meta
    assert stages(tmp_path / "bt")["instruction"]["truncated_instruction"] == 1  # BETA: cut mid-sentence


def test_answer_k_samples_and_more_samples_later_pay_only_for_the_new_ones(tmp_path, fake_url):
    examples = write_examples(tmp_path / "ex")
    first = synth(tmp_path / "ans", fake_url, "--method", "answer", "--instructions", str(tmp_path / "ex"),
                  "--samples", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    more = synth(tmp_path / "ans", fake_url, "--method", "answer", "--instructions", str(tmp_path / "ex"),
                 "--samples", "3")
    assert more.returncode == 0, more.stderr[-2000:]
    manifest = json.loads((tmp_path / "ans" / "manifest.json").read_text())
    assert manifest["usage"]["cache_hits"] == 2 * len(examples) and manifest["usage"]["responses"] == len(examples)
    rows = read_shards(tmp_path / "ans").to_pylist()
    assert len(rows) == 3 * len(examples)
    for example in examples:
        mine = [r for r in rows if load_meta(r["meta"])["prompt_id"] == example["id"]]
        assert sorted(load_meta(r["meta"])["sample"] for r in mine) == [0, 1, 2]
        assert all(r["messages"][:-1] == example["messages"][:-1] for r in mine)  # the old answer dropped
        assert len({r["messages"][-1]["content"] for r in mine}) == 3  # samples differ
        assert load_meta(mine[0]["meta"])["reference"] == "An old answer."


def test_document_shards_where_instructions_are_needed_are_a_one_line_error(tmp_path, fake_url):
    write_documents(tmp_path / "docs", count=2)
    for method in ("answer", "preference"):
        result = synth(tmp_path / method, fake_url, "--method", method, "--instructions", str(tmp_path / "docs"))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"{tmp_path / 'docs'}: holds DOCUMENT rows" in result.stderr
    evol = synth(tmp_path / "evol", fake_url, "--input", str(tmp_path / "docs"))
    assert evol.returncode != 0 and "holds DOCUMENT rows" in evol.stderr and "Traceback" not in evol.stderr


def answered(log: Path) -> list[str]:
    return [e["body"] for e in map(json.loads, log.read_text().splitlines()) if e["status"] == 200]


def cached(output: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (output / "cache").glob("*.jsonl"))


def test_preference_sigkill_then_resume_sends_nothing_twice(tmp_path):
    write_examples(tmp_path / "ex", count=10)
    args = ["--method", "preference", "--instructions", str(tmp_path / "ex"), "--samples", "4",
            "--judge", "pairwise", "preference.pairs=all"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    logs = [tmp_path / f"run{i}.jsonl" for i in range(3)]
    hold = 60  # 40 answers, then 20 of the 120 pairwise judgements
    with server_process("--engine", "fake", "--fake-latency", "0.01", "--request-log", str(logs[0]),
                        "--hold-after", str(hold)) as url:
        command = [sys.executable, "-m", "instruct", "synth", "--output", str(killed), "--base-url", url,
                   "--concurrency", "4", *args, "progress=false"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (logs[0].exists() and len(answered(logs[0])) >= hold and cached(killed) >= hold):
            assert time.monotonic() < deadline, "the run never reached the hold"
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    with server_process("--engine", "fake", "--fake-latency", "0.01", "--request-log", str(logs[1])) as url:
        assert synth(killed, url, *args).returncode == 0
    first, second = answered(logs[0]), answered(logs[1])
    assert len(first) == hold and not set(first) & set(second), "a request answered before the kill was sent again"
    with server_process("--engine", "fake", "--request-log", str(logs[2])) as url:
        assert synth(clean, url, *args).returncode == 0
    assert sorted(answered(logs[2])) == sorted(first + second)
    assert read_shards(killed).to_pylist() == read_shards(clean).to_pylist()
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["schema"] == "PREFERENCE" and manifest["usage"]["cache_hits"] == 40
    assert manifest["judge_usage"]["cache_hits"] == hold - 40


class PositionBiasedJudge(FakeEngine):
    """The fake model, except that as a pairwise judge it always prefers the first answer shown."""

    def generate(self, job):
        generation = super().generate(job)
        if "[[A]]" in job.text():
            generation.text = "Assistant A is better. [[A]]"
        return generation


def run_preference(tmp_path: Path, url: str, name: str, **preference) -> tuple[list[dict], dict]:
    data = {"method": "preference", "instructions": [str(tmp_path / "ex")], "output": str(tmp_path / name),
            "progress": False, "client": {"base_url": url, "concurrency": 4}, "preference": preference}
    manifest = run_synth(load_synth_recipe(data, []), data)
    return read_shards(tmp_path / name).to_pylist() if manifest["counts"]["written"] else [], manifest


def test_pairwise_judging_in_both_orders_turns_position_bias_into_ties(tmp_path):
    write_examples(tmp_path / "ex", count=5)
    with serve_in_thread(PositionBiasedJudge()) as server:
        rows, manifest = run_preference(tmp_path, server.base_url, "biased", judge="pairwise", samples=3)
    counts = manifest["counts"]["stages"]
    assert rows == [] and counts["pair"] == {"position_disagreement": 5 * 3}  # C(3,2) per prompt
    with serve_in_thread(FakeEngine()) as server:  # this judge prefers the longer answer, in either position
        rows, manifest = run_preference(tmp_path, server.base_url, "consistent", judge="pairwise", samples=3,
                                        pairs="all")
    assert rows and all(len(r["chosen"][0]["content"].split()) > len(r["rejected"][0]["content"].split())
                        for r in rows)
    pair_counts = manifest["counts"]["stages"]["pair"]
    assert pair_counts["kept"] + pair_counts.get("tie", 0) == 5 * 3


def test_rubric_pairs_need_a_margin_and_ties_are_counted(tmp_path):
    write_examples(tmp_path / "ex", count=12)
    with serve_in_thread(FakeEngine()) as server:
        rows, manifest = run_preference(tmp_path, server.base_url, "all", samples=4, pairs="all", min_margin=1)
        best, best_manifest = run_preference(tmp_path, server.base_url, "best", samples=4)
    pair = manifest["counts"]["stages"]["pair"]
    assert pair["kept"] == len(rows) and pair["tie"] > 0 and pair["margin_below_min"] > 0
    assert pair["kept"] + pair["tie"] + pair["margin_below_min"] == 12 * 6  # every C(4,2) pair accounted for
    metas = [load_meta(r["meta"]) for r in rows]
    assert all(m["chosen_score"] - m["rejected_score"] > 1 and m["judge"] == "rubric" for m in metas)
    by_prompt = {}
    for meta in metas:
        by_prompt.setdefault(meta["prompt_id"], []).append(meta)
    best_pair = best_manifest["counts"]["stages"]["pair"]
    assert best_pair["kept"] + best_pair.get("tie", 0) == 12  # one pair (or a tie) per prompt
    for row in best:  # best vs worst: the widest margin of that prompt
        meta = load_meta(row["meta"])
        widest = max((m["margin"] for m in by_prompt.get(meta["prompt_id"], [])), default=None)
        assert widest is None or meta["margin"] == widest


def test_answers_of_several_policy_endpoints_are_judged_together(tmp_path):
    write_examples(tmp_path / "ex", count=4)
    with serve_in_thread(FakeEngine()) as first, serve_in_thread(FakeEngine()) as second:
        rows, manifest = run_preference(tmp_path, first.base_url, "multi", samples=2, pairs="all",
                                        policies=[{"base_url": second.base_url, "model": "teacher"}])
    assert manifest["counts"]["stages"]["answer"]["kept"] == 4 * 2 * 2
    assert manifest["policy_1_usage"]["responses"] == 4 * 2 and manifest["usage"]["responses"] == 4 * 2
    pair = manifest["counts"]["stages"]["pair"]
    assert pair["kept"] + pair.get("tie", 0) == 4 * 6  # C(4,2) pairs over both endpoints' answers
    models = {m for r in rows for m in (load_meta(r["meta"]).get("chosen_model"), load_meta(r["meta"]).get("rejected_model"))}
    assert models == {"fake", "teacher"}


def tiny_reward_model(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from instruct.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model())
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), num_labels=1,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reward_model_scorer_matches_a_direct_forward_with_and_without_an_adapter(tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from instruct.synth.judges import reward_scorer

    base = tiny_reward_model(tmp_path / "rm")
    prompts = [[{"role": "user", "content": "Name a colour."}]] * 3
    answers = ["Blue.", "A colour is a property of light that the eye perceives.", "Green"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base).eval()

    def direct(net) -> list[float]:
        scores = []
        for prompt, answer in zip(prompts, answers):
            text = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
            with torch.inference_mode():
                scores.append(net(**tokenizer(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item())
        return scores

    plain = direct(model)
    assert reward_scorer(base, batch_size=3)(prompts, answers) == pytest.approx(plain, abs=1e-5)
    adapted = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"],
                                               init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base),
                                         tmp_path / "adapter").eval()
    expected = direct(reloaded)
    assert expected != pytest.approx(plain, abs=1e-4)  # the adapter changes the scores
    assert reward_scorer(tmp_path / "adapter")(prompts, answers) == pytest.approx(expected, abs=1e-5)


def test_preference_judged_by_a_reward_model(tmp_path, fake_url):
    from instruct.synth.judges import reward_scorer

    write_examples(tmp_path / "ex", count=4)
    model = tiny_reward_model(tmp_path / "rm")
    result = synth(tmp_path / "pref", fake_url, "--method", "preference", "--instructions", str(tmp_path / "ex"),
                   "--samples", "3", "--judge", f"reward:{model}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_shards(tmp_path / "pref").to_pylist()
    assert len(rows) == 4
    score = reward_scorer(model)
    for row in rows:
        chosen, rejected = score([row["prompt"]] * 2, [row["chosen"][0]["content"], row["rejected"][0]["content"]])
        meta = load_meta(row["meta"])
        assert chosen > rejected and meta["chosen_score"] == pytest.approx(chosen, abs=1e-5)
        assert meta["judge"] == "reward"


@pytest.mark.slow
def test_backtranslate_answer_and_preference_with_the_embedded_model(tmp_path):
    from instruct.serve.engines import TransformersEngine

    text = ("Python lists are mutable sequences. You can append items with the append method, remove them "
            "with pop or remove, and sort them in place with sort.\n\nA dictionary maps keys to values. Keys "
            "must be hashable, and looking a key up takes constant time on average.")
    write_table(documents_table([{"id": "py", "text": text, "source": "docs", "url_or_path": "x", "meta": {}}]),
                tmp_path / "docs" / "shards" / "part-0000.arrow")
    write_examples(tmp_path / "ex", count=2)
    short = {"max_tokens": 24, "temperature": 0.7}  # short answers are cut: keep them (keep_truncated)
    # judgements are cut short too: SmolLM2 rambles past 48 tokens without a score anyway, so the
    # unparsed-score path (and curation's follow-up turn) runs as it did with longer budgets
    with serve_in_thread(TransformersEngine(threads=1)) as server:  # one thread: no OpenMP spinning on a busy CPU
        common = {"progress": False, "client": {"base_url": server.base_url}}
        runs = {
            "backtranslate": {"documents": [str(tmp_path / "docs")], "num": 2,
                              "backtranslate": {"min_chars": 50, "max_chars": 160, "threshold": 1,
                                                "instruction_params": {"max_tokens": 32},
                                                "curation_params": {"max_tokens": 16}}},
            "answer": {"instructions": [str(tmp_path / "ex")], "answer": {"samples": 2, "params": short, "keep_truncated": True}},
            "preference": {"instructions": [str(tmp_path / "ex")],
                           "preference": {"samples": 2, "params": short, "keep_truncated": True,
                                          "judge_params": {"max_tokens": 16}}},
        }
        datas = {method: {"method": method, "output": str(tmp_path / method), **common, **extra}
                 for method, extra in runs.items()}
        # the three runs at once, as three clients of one server: requests with the same sampling batch together
        with ThreadPoolExecutor(len(datas)) as pool:
            futures = {method: pool.submit(run_synth, load_synth_recipe(data, []), data) for method, data in datas.items()}
            manifests = {method: future.result() for method, future in futures.items()}
    bt = manifests["backtranslate"]["counts"]
    assert bt["stages"]["passage"]["kept"] == 2 and sum(bt["stages"]["instruction"].values()) == 2  # one per paragraph
    assert sum(bt["stages"].get("curation", {}).values()) == bt["stages"]["instruction"].get("kept", 0)
    for row in read_shards(tmp_path / "backtranslate").to_pylist() if bt["written"] else []:
        meta = load_meta(row["meta"])
        assert text[meta["passage_start"]:meta["passage_end"]] == row["messages"][1]["content"]
    assert manifests["answer"]["counts"]["stages"]["answer"].get("kept", 0) >= 1
    judged = manifests["preference"]["counts"]["stages"]
    assert sum(judged["answer"].values()) == 4 and manifests["preference"]["judge_usage"]["responses"] >= 1
