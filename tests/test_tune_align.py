"""Reward and DPO-family objectives on a tiny random Llama: losses and gradients against the papers'
formulas computed independently (unpacked forwards, a separate reference copy), packed == padded,
the reference frozen, reward-model loss/accuracy by hand, output loading with transformers + peft."""
from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_tune_support import tiny_model  # noqa: F401  (fixture)

from instruct.tune import load_config, train
from instruct.tune.dpo import PreferenceObjective
from instruct.tune.methods import apply_method, load_base
from instruct.tune.preference_data import collate_pairs, load_preferences, tokenize_preferences
from instruct.tune.reward import RewardScorer, pairwise_loss


def pair_rows(docstrings, count: int, seed: int = 0) -> list[dict]:
    """Real docstrings (chosen) vs the same words shuffled (rejected): a clear, real-text signal."""
    rng = random.Random(seed)
    rows = []
    for name, doc in docstrings[:count]:
        words = doc[:160].split()
        shuffled = words[:]
        while len(words) > 1 and shuffled == words:
            rng.shuffle(shuffled)
        if len(words) > 1:
            rows.append({"prompt": f"What does {name} do?", "chosen": " ".join(words), "rejected": " ".join(shuffled)})
    return rows


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, docstrings) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_rows(docstrings, 60)))
    return path


def config_for(model, data, output, *overrides):
    base = ["data.max_length=256", "train.micro_batch_tokens=1024", "train.grad_accum=1", "train.lr=3e-3",
            "data.eval_fraction=0.2", "train.threads=1", "train.eval_every=100", "method.dropout=0.0"]
    return load_config(None, base + list(overrides), {"model": str(model), "data.path": str(data), "output": str(output)})


def reference_loss(loss, pc, pr, rc, rr, nc, nr, beta, gamma=0.5, lam=0.1, z=None):
    """The papers' formulas, written out independently of instruct.tune.dpo."""
    if loss == "kto":  # Ethayarajh et al. 2024, lambda_D = lambda_U = 1, averaged over the pair's two examples
        return ((1 - torch.sigmoid(beta * ((pc - rc) - z))) + (1 - torch.sigmoid(beta * (z - (pr - rr))))) / 2
    if loss == "dpo":
        return -F.logsigmoid(beta * ((pc - rc) - (pr - rr)))
    if loss == "ipo":
        return ((pc - rc) - (pr - rr) - 1 / (2 * beta)) ** 2
    if loss == "simpo":
        return -torch.log(torch.sigmoid(beta * pc / nc - beta * pr / nr - gamma))
    mc, mr = pc / nc, pr / nr  # orpo: NLL + lambda * odds-ratio term, odds = p / (1 - p)
    odds = torch.log(torch.exp(mc) / (1 - torch.exp(mc))) - torch.log(torch.exp(mr) / (1 - torch.exp(mr)))
    return -mc - lam * torch.log(torch.sigmoid(odds))


def answer_logp(model, ids, targets):
    """Summed log p of the trained tokens of one sequence, by a plain unpacked forward."""
    logits = model(input_ids=torch.as_tensor(ids)[None]).logits[0].double()
    targets = torch.as_tensor(targets)
    mask = targets != -100
    picked = torch.log_softmax(logits, -1)[mask].gather(1, targets[mask][:, None]).squeeze(1)
    return picked.sum(), mask.sum().double()


@pytest.fixture(scope="module")
def policy_and_pairs(tiny_model, pairs_file):  # noqa: F811
    from instruct.tune.attention import register

    base, tokenizer = load_base(str(tiny_model), attn_implementation=register())
    reference = copy.deepcopy(base).eval()
    config = config_for(tiny_model, pairs_file, "unused")
    policy = apply_method(base, config.method)
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA starts as the identity; move it so policy != reference
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    data = tokenize_preferences(load_preferences(pairs_file).slice(0, 3), tokenizer, 256, "drop", None)
    return policy.double(), reference.double(), data  # fp64: the comparison tests formulas and packing, not rounding


def mismatched_logratios(policy, reference, tiny_model, pairs_file, count):  # noqa: F811
    """log pi - log ref of pair i's prompt with pair i + 1's chosen answer, rendered from the raw rows."""
    from transformers import AutoTokenizer

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()][:count]
    swapped = pairs_file.with_name("swapped.jsonl")
    swapped.write_text("".join(json.dumps({**rows[i], "chosen": rows[(i + 1) % count]["chosen"]}) + "\n"
                               for i in range(count)))
    data = tokenize_preferences(load_preferences(swapped), AutoTokenizer.from_pretrained(tiny_model), 256, "drop", None)
    with torch.no_grad():
        return torch.stack([answer_logp(policy, data.sequences.input_ids[2 * i], data.sequences.targets[2 * i])[0]
                            - answer_logp(reference, data.sequences.input_ids[2 * i], data.sequences.targets[2 * i])[0]
                            for i in range(count)])


@pytest.mark.parametrize("loss", ["dpo", "ipo", "simpo", "orpo", "kto"])
@pytest.mark.parametrize("layout", ["shared_prompt", "packed", "padded"])
def test_preference_losses_and_gradients_match_the_papers(policy_and_pairs, tiny_model, pairs_file, loss, layout):  # noqa: F811
    policy, reference, data = policy_and_pairs
    pack = layout != "padded"
    config = config_for(tiny_model, pairs_file, "unused", f"method.loss={loss}", f"data.pack={str(pack).lower()}",
                        "train.loss_chunk_tokens=16")  # the head in several chunks
    objective = PreferenceObjective(config)
    data.share_prompt = layout == "shared_prompt"
    try:
        batch = objective.collate(data, list(range(len(data))))
    finally:
        data.share_prompt = False
    policy.zero_grad()
    ours = objective.loss_sum(policy, batch, select_logits=pack)
    ours.backward()
    ours_grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}

    policy.zero_grad()
    expected = torch.zeros((), dtype=torch.float64)
    beta = config.method.preference_beta
    mismatched = mismatched_logratios(policy, reference, tiny_model, pairs_file, len(data)).mean()
    z = mismatched.clamp(min=0)
    if loss == "kto":  # the mismatched sequences the batch built are the ones rendered from swapped rows
        assert objective.pop_metrics()["kl"] == pytest.approx(float(mismatched), abs=1e-6)
    for pair in range(len(data)):
        sides = [answer_logp(policy, data.sequences.input_ids[2 * pair + s], data.sequences.targets[2 * pair + s])
                 for s in (0, 1)]
        with torch.no_grad():
            refs = [answer_logp(reference, data.sequences.input_ids[2 * pair + s],
                                data.sequences.targets[2 * pair + s])[0] for s in (0, 1)]
        expected = expected + reference_loss(loss, sides[0][0], sides[1][0], refs[0], refs[1], sides[0][1],
                                             sides[1][1], beta, z=z)
    expected.backward()
    assert abs(float(ours) - float(expected)) <= 1e-5 * max(1.0, abs(float(expected)))
    for name, parameter in policy.named_parameters():  # to 1e-5 of the gradient's scale
        if parameter.requires_grad:
            error = (ours_grads[name] - parameter.grad).abs().max()
            assert error <= 1e-5 * max(1.0, float(parameter.grad.abs().max())), (name, float(error))


def test_kto_loss_by_hand():
    from instruct.tune.dpo import preference_losses

    chosen, rejected = torch.tensor([0.5, -1.0]), torch.tensor([-0.2, 0.4])  # log pi - log ref per answer
    zero = torch.zeros(2)
    losses, _, _ = preference_losses("kto", chosen, rejected, zero, zero, None, None, beta=2.0,
                                     kl=torch.tensor(0.3), weights=(1.0, 1.5))
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [((1 - sigmoid(2.0 * (c - 0.3))) + 1.5 * (1 - sigmoid(2.0 * (0.3 - r)))) / 2
                for c, r in ((0.5, -0.2), (-1.0, 0.4))]
    assert losses.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("loss", ["dpo", "kto"])
def test_reference_logps_are_computed_once_per_pair(policy_and_pairs, tiny_model, pairs_file, loss):  # noqa: F811
    """Epochs after the first reuse each pair's reference sums (the same numbers) instead of a reference forward;
    KTO's mismatched sequences change with the batch, so KTO runs it every time."""
    from transformers import AutoTokenizer

    policy, _, data = policy_and_pairs
    other = tokenize_preferences(load_preferences(pairs_file).slice(3, 1), AutoTokenizer.from_pretrained(tiny_model),
                                 256, "drop", None)  # another set: its pair 0 is not data's pair 0
    objective = PreferenceObjective(config_for(tiny_model, pairs_file, "unused", f"method.loss={loss}"))
    forwards = []
    hook = policy.get_base_model().model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        with torch.no_grad():
            first = objective.reference_logps(policy, objective.collate(data, [0, 1]), True)
            objective.reference_logps(policy, objective.collate(data, [2]), True)
            again = objective.reference_logps(policy, objective.collate(data, [2, 0, 1]), True)  # another packing
            expected = objective.reference_logps(policy, objective.collate(data, [2]), True)
            elsewhere = objective.reference_logps(policy, objective.collate(other, [0]), True)
    finally:
        hook.remove()
    assert len(forwards) == (3 if loss == "dpo" else 5)
    assert not torch.allclose(elsewhere[:2], first[:2])
    # pairs 2, 0, 1 in that order (KTO's mismatched sums follow the pairs')
    assert torch.allclose(again[2:6], first[:4], rtol=1e-9) and torch.allclose(again[:2], expected[:2], rtol=1e-9)


def test_shared_prompt_packs_each_prompt_once(policy_and_pairs):
    _, _, data = policy_and_pairs
    pairs = list(range(len(data)))
    separate = collate_pairs(data, pairs, pack=True)
    data.share_prompt = True
    try:
        shared = collate_pairs(data, pairs, pack=True)
        planned = data.lengths
    finally:
        data.share_prompt = False
    saved = [data.shared_tokens(i) for i in pairs]
    assert min(saved) > 5  # the prompt "What does NAME do?" in the chat template, at least
    assert shared.tokens == separate.tokens - sum(saved) == int(planned.sum())
    assert (shared.targets != -100).sum() == (separate.targets != -100).sum()  # every answer token still trained


def test_shared_prompt_gives_a_reward_model_the_same_rewards(policy_and_pairs, tiny_model):  # noqa: F811
    from instruct.tune.attention import register
    from instruct.tune.reward import last_positions, pooled_rewards

    _, _, data = policy_and_pairs
    model, _ = load_base(str(tiny_model), scalar_head=True, attn_implementation=register())
    torch.manual_seed(2)
    torch.nn.init.normal_(model.score.weight, std=0.5)
    pairs = list(range(len(data)))
    separate = collate_pairs(data, pairs, pack=True)
    data.share_prompt = True
    try:
        shared = collate_pairs(data, pairs, pack=True)
    finally:
        data.share_prompt = False
    with torch.no_grad():
        expected = pooled_rewards(model, separate.inputs, last_positions(separate))
        got = pooled_rewards(model, shared.inputs, last_positions(shared))
    assert expected.std() > 0 and torch.allclose(got, expected, atol=1e-5)


@pytest.fixture(scope="module")
def dpo_run(tiny_model, pairs_file, tmp_path_factory):  # noqa: F811
    """One 8-step DPO run (objective left on auto) that the DPO test and the pair-eval CLI test both read."""
    return train(config_for(tiny_model, pairs_file, tmp_path_factory.mktemp("dpo") / "out", "train.max_steps=8"),
                 show_progress=False)


def test_dpo_trains_against_a_frozen_reference(dpo_run, tiny_model, pairs_file):  # noqa: F811
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from instruct.tune.loop import objective_for

    result = dpo_run  # trained with data.objective auto; spelt out, dpo picks the same objective
    assert objective_for(config_for(tiny_model, pairs_file, "unused", "data.objective=dpo")).name == "dpo"
    assert result.objective == "dpo" and result.examples + result.eval_examples == 60
    assert result.eval_metrics["eval_reward_accuracy"] > result.initial_eval_metrics["eval_reward_accuracy"]
    assert result.eval_loss < result.initial_eval_loss < math.log(2) + 1e-6
    original = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.output).eval()
    ids = torch.randint(0, 1000, (1, 24))
    with torch.no_grad():
        assert not torch.allclose(tuned(input_ids=ids).logits, original(input_ids=ids).logits, atol=1e-4)
        with tuned.disable_adapter():  # the reference the loss used: exactly the untouched base
            assert torch.equal(tuned(input_ids=ids).logits, original(input_ids=ids).logits)
    base_weights = {n: p for n, p in original.named_parameters()}
    for name, parameter in tuned.get_base_model().named_parameters():
        if "lora_" not in name:
            assert torch.equal(parameter, base_weights[name.replace(".base_layer", "")]), name


def test_kto_trains_through_the_shared_loop(tiny_model, pairs_file, tmp_path):  # noqa: F811
    result = train(config_for(tiny_model, pairs_file, tmp_path / "kto", "method.loss=kto", "train.max_steps=8"),
                   show_progress=False)
    assert result.objective == "dpo" and result.eval_loss < result.initial_eval_loss
    assert result.eval_metrics["eval_reward_accuracy"] > result.initial_eval_metrics["eval_reward_accuracy"]
    assert "eval_kl" in result.eval_metrics


def test_reward_pairwise_loss_and_accuracy_by_hand():
    chosen, rejected = torch.tensor([2.0, 0.0, 1.5]), torch.tensor([1.0, 1.0, -0.5])
    expected = [math.log(1 + math.exp(-1.0)), math.log(1 + math.exp(1.0)), math.log(1 + math.exp(-2.0))]
    assert torch.allclose(pairwise_loss(chosen, rejected), torch.tensor(expected), atol=1e-6)
    assert float((chosen > rejected).float().mean()) == pytest.approx(2 / 3)


def test_reward_model_learns_loads_with_transformers_and_scores(tiny_model, docstrings, tmp_path):  # noqa: F811
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    pairs_file = tmp_path / "refusals.jsonl"  # a signal a 64-wide random model can learn in a few steps
    pairs_file.write_text("".join(json.dumps({**r, "rejected": "I do not know."}) + "\n"
                                  for r in pair_rows(docstrings, 60)))
    result = train(config_for(tiny_model, pairs_file, tmp_path / "rm", "data.objective=reward", "train.max_steps=15",
                              "train.lr=5e-3"), show_progress=False)
    assert result.objective == "reward" and result.eval_loss < result.initial_eval_loss
    assert result.eval_metrics["eval_accuracy"] >= 0.8
    saved = json.loads((Path(result.output) / "result.json").read_text())
    assert saved["eval_metrics"]["eval_accuracy"] == result.eval_metrics["eval_accuracy"]

    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1),
                                      result.output).eval()
    fresh = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    assert not torch.equal(model.get_base_model().score.weight, fresh.score.weight)  # the trained head was saved
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()][:8]
    scorer = RewardScorer(result.output, batch_size=3)
    chosen = scorer.score([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    rejected = scorer.score([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    assert sum(c > r for c, r in zip(chosen, rejected)) >= 6
    alone = RewardScorer(result.output, batch_size=1).score([rows[0]["prompt"]], [rows[0]["chosen"]])
    assert alone[0] == pytest.approx(chosen[0], abs=1e-4)  # padding does not change a score


def test_bad_preference_line_names_file_and_line(tmp_path):
    from instruct.io.readers.base import InputError

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n"
                    + json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: .*identical"):
        load_preferences(path)


def test_eval_pairs_cli_reports_base_and_tuned_accuracy(dpo_run, pairs_file, tmp_path):  # noqa: F811
    import subprocess
    import sys

    result = dpo_run
    assert result.objective == "dpo"  # data.objective auto on PREFERENCE data
    process = subprocess.run([sys.executable, "-m", "instruct", "eval", "--pairs", str(pairs_file), "--adapter",
                              result.output, "--output", str(tmp_path / "eval"), "--limit", "20"],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "pair_eval.json").read_text())
    assert report["n"] == 20 and {"base_accuracy", "tuned_accuracy", "accuracy_difference"} <= set(report)
    assert report["implicit_reward_accuracy"]["mean"] > 0.5
    assert "tuned_accuracy" in process.stdout


def unpaired_rows(pairs_file, count: int, shift: int = 0) -> list[dict]:
    """TRL's unpaired KTO rows from the pairs: pair i's chosen (desirable) for even i, its rejected otherwise;
    `shift` gives each prompt the answer of the row `shift` places on (a mismatched sequence, rendered)."""
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()][:count]
    answers = [(p["chosen"], True) if i % 2 == 0 else (p["rejected"], False) for i, p in enumerate(pairs)]
    return [{"prompt": p["prompt"], "completion": answers[(i + shift) % count][0], "label": answers[i][1]}
            for i, p in enumerate(pairs)]


def test_unpaired_kto_loss_and_gradients_match_the_formula(policy_and_pairs, tiny_model, pairs_file, tmp_path):  # noqa: F811
    from transformers import AutoTokenizer

    from instruct.tune.preference_data import load_unpaired, tokenize_unpaired

    policy, reference, _ = policy_and_pairs
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    sets = []
    for shift in (0, 1):
        path = tmp_path / f"unpaired{shift}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in unpaired_rows(pairs_file, 4, shift)))
        sets.append(tokenize_unpaired(load_unpaired(path), tokenizer, 256, "drop", None))
    data, swapped = sets
    data.mismatched = True
    objective = PreferenceObjective(config_for(tiny_model, tmp_path / "unpaired0.jsonl", "unused", "method.loss=kto",
                                               "train.loss_chunk_tokens=16"))
    batch = objective.collate(data, [0, 1, 2, 3])
    assert batch.labels.tolist() == [True, False, True, False] and batch.sequences == 8
    policy.zero_grad()
    ours = objective.loss_sum(policy, batch, select_logits=True)
    ours.backward()
    ours_grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}

    policy.zero_grad()
    seq = data.sequences
    ratio = lambda s, i: (answer_logp(policy, s.input_ids[i], s.targets[i])[0]  # noqa: E731
                          - answer_logp(reference, s.input_ids[i], s.targets[i])[0].detach())
    with torch.no_grad():
        z = torch.stack([ratio(swapped.sequences, i) for i in range(4)]).mean().clamp(min=0)
    beta = objective.config.method.preference_beta
    expected = sum((1 - torch.sigmoid(beta * (ratio(seq, i) - z))) if i % 2 == 0
                   else (1 - torch.sigmoid(beta * (z - ratio(seq, i)))) for i in range(4))
    expected.backward()
    assert abs(float(ours) - float(expected)) <= 1e-6
    for name, parameter in policy.named_parameters():
        if parameter.requires_grad:
            assert torch.allclose(ours_grads[name], parameter.grad, rtol=1e-5, atol=1e-9), name


def test_unpaired_kto_trains_and_other_losses_refuse_it(tiny_model, pairs_file, tmp_path):  # noqa: F811
    from instruct.config import ConfigError
    from instruct.io.readers.base import InputError
    from instruct.tune.preference_data import load_unpaired

    path = tmp_path / "unpaired.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in unpaired_rows(pairs_file, 60)))
    result = train(config_for(tiny_model, path, tmp_path / "kto", "method.loss=kto", "train.max_steps=6"),
                   show_progress=False)
    assert result.objective == "dpo" and result.eval_loss < result.initial_eval_loss
    assert {"eval_kl", "eval_desirable_reward", "eval_undesirable_reward"} <= set(result.eval_metrics)
    with pytest.raises(ConfigError, match="unpaired.jsonl: unpaired rows .* only method.loss=kto, not dpo"):
        train(config_for(tiny_model, path, tmp_path / "dpo"), show_progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text().splitlines()[0] + "\n" + json.dumps({"prompt": "q", "completion": "a",
                                                                          "label": "yes"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: label must be true or false"):
        load_unpaired(bad)
