"""`--method preference`: K answers per prompt from the policy endpoint, judged, turned into PREFERENCE pairs.

Judges (`preference.judge`):
- `rubric` (default): an LLM scores every answer 1-5 on an UltraFeedback-style rubric; pairs come from
  the scores as for UltraFeedback records (`instruct.preferences`), best vs worst per prompt or all pairs;
- `pairwise`: an LLM compares two answers, asked twice with the order swapped; only a verdict that
  survives the swap makes a pair, so a judge that prefers a position yields ties, not pairs;
- `reward:DIR`: a trained reward model (`AutoModelForSequenceClassification`, + peft adapter) scores
  every answer in this process.
A pair needs a score margin above `min_margin`; ties and small margins are counted under stage `pair`.
The judge endpoint defaults to the policy's (`judge_base_url`, `judge_model` to change it); `policies`
adds endpoints whose answers join the policy's (`samples` each). Every endpoint has its own request cache
beside the policy's, so a re-run pays for none twice.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from instruct.config import ConfigError
from instruct.preferences import PairStats, to_preferences
from instruct.schema import dump_meta, load_meta
from instruct.synth.answer import AnswerConfig, Candidate, sample_answers
from instruct.synth.client import LLMClient, Request
from instruct.synth.judges import pairwise_prompt, parse_score, parse_verdict, reconcile, reward_scorer, rubric_prompt
from instruct.synth.self_instruct import SynthOutput


def _judge_params() -> dict[str, Any]:
    return {"temperature": 0.0, "max_tokens": 256}


@dataclass
class Policy:
    """Another endpoint whose answers join the policy's (several models' answers per prompt, as UltraFeedback)."""

    base_url: str
    model: str | None = None  # default: the first model the endpoint lists


@dataclass
class PreferenceConfig(AnswerConfig):
    samples: int = 4  # answers per prompt (UltraFeedback used 4)
    judge: str = "rubric"  # rubric | pairwise | reward:DIR
    judge_base_url: str | None = None  # default: the policy endpoint
    judge_model: str | None = None
    judge_params: dict[str, Any] = field(default_factory=_judge_params)
    min_margin: float = 0.0  # a pair needs chosen - rejected score above this
    pairs: Literal["best_worst", "all"] = "best_worst"  # one pair per prompt, or every pair with a margin
    policies: list[Policy] = field(default_factory=list)  # more endpoints, `samples` answers each

    def judge_kind(self) -> str:
        kind = self.judge.split(":", 1)[0]
        if kind not in ("rubric", "pairwise", "reward") or (kind == "reward") != (":" in self.judge):
            raise ConfigError(f"preference.judge: {self.judge!r} is not rubric, pairwise or reward:DIR")
        return kind


class Preference:
    def __init__(self, config: PreferenceConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        config.judge_kind()
        self.config, self.client, self.seed, self.progress = config, client, seed, progress
        self.judge_name: str | None = None

    async def run(self, prompts: list[dict[str, Any]], num: int) -> SynthOutput:
        out = SynthOutput()
        chosen = prompts[:num]
        out.keep("input", len(chosen))
        answered = await sample_answers(self.client, chosen, self.config, self.seed, out, self.progress)
        for number, policy in enumerate(self.config.policies, 1):
            async with LLMClient(self._client_config(f"policy-{number}", policy.base_url, policy.model)) as other:
                if other.config.model is None:
                    other.config.model = await other.default_model()
                more = await sample_answers(other, chosen, self.config, self.seed + 1000 * number, out,
                                            self.progress)
                out.extra_usage[f"policy_{number}"] = other.usage.as_dict()
            answered = [mine + theirs for mine, theirs in zip(answered, more)]
        groups = [self._distinct(candidates, out) for candidates in answered]
        if self.config.judge_kind() == "reward":
            self.judge_name = self.config.judge
            self._pairs_from_scores(groups, self._reward_scores(groups), out)
            return out
        async with LLMClient(self._judge_config()) as judge:
            if judge.config.model is None:
                judge.config.model = await judge.default_model()
            self.judge_name = judge.config.model
            if self.config.judge_kind() == "rubric":
                self._pairs_from_scores(groups, await self._rubric_scores(judge, groups, out), out)
            else:
                await self._pairwise(judge, groups, out)
            out.extra_usage["judge"] = judge.usage.as_dict()
        return out

    def _judge_config(self):
        config, policy = self.config, self.client.config
        if config.judge_base_url is None:
            return self._client_config("judge", policy.base_url, config.judge_model or policy.model)
        return self._client_config("judge", config.judge_base_url, config.judge_model)

    def _client_config(self, name: str, base_url: str | None, model: str | None):
        """The policy's client settings for another endpoint, with its own cache file beside the policy's."""
        policy = self.client.config
        cache = str(Path(policy.cache).with_name(f"{name}.jsonl")) if policy.cache else None
        return dataclasses.replace(policy, base_url=base_url, model=model, cache=cache)

    def _distinct(self, candidates: list[Candidate], out: SynthOutput) -> list[Candidate]:
        """Candidates with distinct answer texts; a prompt left with fewer than two cannot make a pair."""
        seen, kept = set(), []
        for candidate in candidates:
            text = candidate.response.text.strip()
            if text in seen:
                out.reject("candidates", "duplicate_answer")
                continue
            seen.add(text)
            kept.append(candidate)
        if len(kept) < 2:
            out.reject("prompt", "fewer_than_two_answers", {"id": candidates[0].prompt["id"]} if candidates else None)
            return []
        return kept

    # -- absolute scores: rubric or reward model -----------------------------------------------------------
    async def _rubric_scores(self, judge: LLMClient, groups: list[list[Candidate]],
                             out: SynthOutput) -> list[list[float | None]]:
        flat = [c for group in groups for c in group]
        bar = self.progress(total=len(flat), desc="judged") if self.progress else None
        responses = await judge.complete_many(
            [Request(messages=({"role": "user", "content": rubric_prompt(c.prompt["prompt"], c.response.text)},),
                     params=self.config.judge_params) for c in flat],
            on_done=(lambda _: bar.update(1)) if bar else None)
        if bar is not None:
            bar.close()
        scores = iter(responses)
        result = []
        for group in groups:
            row = []
            for candidate in group:
                response = next(scores)
                score = parse_score(response.text) if response.ok else None
                if score is None:
                    out.reject("judge", "request_failed" if not response.ok else "unparsed_score",
                               {"id": candidate.prompt["id"], "sample": candidate.sample, "judgement": response.text})
                else:
                    out.keep("judge")
                row.append(score)
            result.append(row)
        return result

    def _reward_scores(self, groups: list[list[Candidate]]) -> list[list[float | None]]:
        score = reward_scorer(self.config.judge.split(":", 1)[1])
        flat = [c for group in groups for c in group]
        values = iter(score([c.prompt["prompt"] for c in flat], [c.response.text for c in flat]))
        return [[next(values) for _ in group] for group in groups]

    def _pairs_from_scores(self, groups: list[list[Candidate]], scores: list[list[float | None]],
                                 out: SynthOutput) -> None:
        stats = PairStats()
        for group, group_scores in zip(groups, scores):
            rated = [(c, s) for c, s in zip(group, group_scores) if s is not None]
            if len(rated) < 2:
                if group:
                    out.reject("prompt", "fewer_than_two_scored", {"id": group[0].prompt["id"]})
                continue
            if self.config.pairs == "best_worst":
                ordered = sorted(rated, key=lambda item: -item[1])  # stable: the earliest sample wins a tie
                rated = [ordered[0], ordered[-1]]
            record = {"id": group[0].prompt["id"], "prompt": group[0].prompt["prompt"],
                      "completions": [{"response": c.response.text.strip(), "score": s, "model": c.model,
                                       "sample": c.sample} for c, s in rated]}
            samples = {c.response.text.strip(): c.sample for c, _ in rated}
            for pair in to_preferences(record, "preference", self.config.min_margin, stats):
                chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
                self._emit(pair, group[0], out, chosen_sample=samples[chosen], rejected_sample=samples[rejected])
        for reason, count in stats.skipped.items():
            out.reject("pair", reason, count=count)

    # -- pairwise, both orders ------------------------------------------------------------------------
    async def _pairwise(self, judge: LLMClient, groups: list[list[Candidate]], out: SynthOutput) -> None:
        matches = [(group, x, y) for group in groups for x, y in itertools.combinations(group, 2)]
        requests = []
        for _, x, y in matches:
            prompt = x.prompt["prompt"]
            for first, second in ((x, y), (y, x)):
                text = pairwise_prompt(prompt, first.response.text.strip(), second.response.text.strip())
                requests.append(Request(messages=({"role": "user", "content": text},), params=self.config.judge_params))
        bar = self.progress(total=len(requests), desc="judged") if self.progress else None
        responses = await judge.complete_many(requests, on_done=(lambda _: bar.update(1)) if bar else None)
        if bar is not None:
            bar.close()
        decided: dict[int, list[tuple[Candidate, Candidate, list[str]]]] = {}
        wins: Counter = Counter()
        for index, (group, x, y) in enumerate(matches):
            forward, backward = responses[2 * index], responses[2 * index + 1]
            verdicts = [parse_verdict(r.text) if r.ok else None for r in (forward, backward)]
            outcome = reconcile(*verdicts)
            if outcome is None:
                out.reject("judge", "unparsed_verdict", {"id": x.prompt["id"], "samples": [x.sample, y.sample],
                                                         "judgements": [forward.text, backward.text]})
                continue
            out.keep("judge")
            if outcome == "tie":
                out.reject("pair", "tie" if verdicts[0] == verdicts[1] == "tie" else "position_disagreement")
                continue
            winner, loser = (x, y) if outcome == "x" else (y, x)
            wins[id(winner)] += 1
            decided.setdefault(id(group), []).append((winner, loser, [forward.text, backward.text]))
        for pairs in decided.values():
            if self.config.pairs == "best_worst":
                best = max(pairs, key=lambda p: wins[id(p[0])] - wins[id(p[1])])
                out.reject("pair", "not_best_worst", count=len(pairs) - 1)
                pairs = [best]
            for winner, loser, judgements in pairs:
                record = {"id": f"{winner.prompt['id']}-{winner.sample}-{loser.sample}",
                          "prompt": winner.prompt["prompt"], "chosen": winner.response.text.strip(),
                          "rejected": loser.response.text.strip()}
                (pair,) = to_preferences(record, "preference")
                self._emit(pair, winner, out, chosen_sample=winner.sample, rejected_sample=loser.sample,
                           chosen_wins=wins[id(winner)], rejected_wins=wins[id(loser)], judgements=judgements)

    def _emit(self, pair: dict[str, Any], candidate: Candidate, out: SynthOutput, **details: Any) -> None:
        meta = load_meta(pair["meta"])
        meta.update(method="preference", model=candidate.model, prompt_id=candidate.prompt["id"],
                    samples=self.config.samples, judge=self.config.judge_kind(), judge_model=self.judge_name,
                    params={"answer": self.config.params, "judge": self.config.judge_params}, **details)
        pair["meta"] = dump_meta(meta)
        out.keep("pair")
        out.rows.append(pair)
