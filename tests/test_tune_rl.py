"""Online RL: the KL estimators, GAE and group advantages by hand; GRPO and PPO raise the reward of a
verifiable toy task (answers of exactly three words) on a tiny random Llama while the KL stays bounded."""
from __future__ import annotations

import json
import math

import pytest
import torch
from test_tune_support import tiny_model  # noqa: F401  (fixture)

from instruct.tune import load_config, train
from instruct.tune.rl import AdaptiveKL, Policy, gae, group_advantages, kl_terms, load_prompts


def three_words(prompts: list[str], completions: list[str]) -> list[float]:
    """The verifiable reward: 0 for exactly three words, minus the distance otherwise."""
    return [-abs(len(c.split()) - 3) for c in completions]


def test_kl_terms_by_hand():
    k1, k3 = kl_terms(torch.log(torch.tensor([0.5, 0.25])), torch.log(torch.tensor([0.25, 0.25])))
    assert torch.allclose(k1, torch.tensor([math.log(2), 0.0]))
    assert torch.allclose(k3, torch.tensor([0.5 - 1 + math.log(2), 0.0]))


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.5, 0.6, 0.9]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the second sequence ended after two tokens
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.9)
    expected = torch.tensor([[0.1 + 0.9 * (0.1 + 0.9 * 0.3), 0.1 + 0.9 * 0.3, 0.3], [0.1 + 0.9 * 0.4, 0.4, 0.0]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, (expected + values) * mask, atol=1e-6)


def test_group_advantages_and_adaptive_kl_by_hand():
    assert torch.allclose(group_advantages(torch.tensor([1.0, 3.0, 2.0, 2.0]), 2),
                          torch.tensor([-1 / math.sqrt(2), 1 / math.sqrt(2), 0.0, 0.0]), atol=1e-4)
    control = AdaptiveKL(0.1, target=1.0, horizon=100)
    assert control.update(3.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))  # error clipped at +0.2
    assert AdaptiveKL(0.1, None, 100).update(3.0, 10) == 0.1  # fixed beta without a target


def test_prompts_load_from_any_record(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps(
        {"messages": [{"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}) + "\n")
    assert load_prompts(path) == [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]


def test_policy_log_probs_and_values_match_a_full_forward(tiny_model):  # noqa: F811
    """The policy projects onto the vocabulary only where completion tokens are predicted: same numbers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    start = 9
    head = torch.nn.Linear(model.config.hidden_size, 1)
    with torch.no_grad():
        logps, values = Policy(model, head)(ids, mask, start)
        out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                    output_hidden_states=True)
    full = torch.log_softmax(out.logits[:, start - 1:-1].float(), -1).gather(2, ids[:, start:, None]).squeeze(-1)
    assert logps.shape == (3, 3) and torch.allclose(logps, full, atol=1e-5)
    assert torch.allclose(values, head(out.hidden_states[-1][:, start - 1:-1]).squeeze(-1), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["grpo", "ppo"])
def test_online_rl_raises_a_verifiable_reward(tiny_model, docstrings, tmp_path, objective):  # noqa: F811
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Describe {name} in three words."}) + "\n"
                               for name, _ in docstrings[:32]))
    config = load_config(None, [f"data.objective={objective}", "rl.max_new_tokens=8", "rl.prompts_per_step=4",
                                "rl.num_generations=6", "train.lr=2e-2", "train.threads=1", "train.max_steps=10",
                                "rl.kl_beta=0.01", "train.warmup_steps=0", "method.dropout=0.0"],
                         {"model": str(tiny_model), "output": str(tmp_path / objective),
                          "rl.prompts": str(prompts), "rl.reward": "test_tune_rl:three_words"})
    result = train(config, show_progress=False)
    rewards = [r["reward"] for r in result.log]
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.5, rewards
    assert all(r["kl"] < 10 for r in result.log), [r["kl"] for r in result.log]
    assert all(key in result.log[-1] for key in ("reward", "kl", "response_length", "kl_beta"))
    assert (tmp_path / objective / "adapter_model.safetensors").is_file()
    assert (tmp_path / objective / "value_head.safetensors").is_file() == (objective == "ppo")
    card = (tmp_path / objective / "README.md").read_text()  # our card, not peft's blank template
    assert f"objective {objective}" in card and str(prompts) in card and "last_reward" in card
    base = json.loads((tmp_path / objective / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == json.loads((tmp_path / objective / "base_model.json").read_text())["name_or_path"]
