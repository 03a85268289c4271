"""Templates: promptsource-identical rendering, strictness, sandboxing, the template step, mixtures, export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jinja2 import BaseLoader, Environment

from instruct.io.readers.base import InputError
from instruct.io.shards import read_shards, write_table
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.resources import labeled_samples
from instruct.schema import examples_table, load_meta, to_example
from instruct.templates import TemplateError, load_templates
from instruct.templates.check import check_all

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = labeled_samples()

# promptsource's own file layout and tags; the template texts are ours.
PROMPTSOURCE_YAML = r"""dataset: reviews
templates:
  0a1b2c3d-0000-4000-8000-000000000001: !Template
    answer_choices: bad ||| good
    id: 0a1b2c3d-0000-4000-8000-000000000001
    jinja: "Here is a review: {{text}}\nWas the reviewer pleased? |||\n{{answer_choices[label]}}  "
    metadata: !TemplateMetadata
      choices_in_prompt: false
      languages:
      - en
      metrics:
      - Accuracy
      original_task: true
    name: pleased
    reference: ''
  0a1b2c3d-0000-4000-8000-000000000002: !Template
    answer_choices: '{{ title }} ||| something else'
    id: 0a1b2c3d-0000-4000-8000-000000000002
    jinja: '{% if label == 1 %}Title: {{ title }}

      {% for a, b in zip(tags, tags[1:]) %}{{ a }}>{{ b }} {% endfor %}

      ||| {{ answer_choices[0] }} {{ tags | most_frequent | join("+") }}{% endif %}'
    metadata: !TemplateMetadata
      choices_in_prompt: true
      languages:
      - en
      metrics:
      - Other
      original_task: false
    name: only_positive
    reference: ours
"""

ROWS = [
    {"id": "r0", "text": "Sharp ||| pipes in text", "title": "Pipes", "tags": ["x", "y", "x"], "label": 1},
    {"id": "r1", "text": "  Dull. ", "title": "Dull", "tags": ["a", "b"], "label": 0},
]


def promptsource_reference(jinja: str, choices: str | None, row: dict) -> list[str]:
    """promptsource's Template.apply algorithm (truncate=False), with its plain Environment."""
    env = Environment(loader=BaseLoader)
    env.globals.update(zip=zip)
    env.filters["most_frequent"] = lambda items: [i for i, n in __import__("collections").Counter(items).most_common()
                                                  if n == __import__("collections").Counter(items).most_common()[0][1]]
    protector = "3ed2dface8203c4c9dfb1a5dc58e41e0"
    protected = {k: v.replace("|||", protector) if isinstance(v, str) else v for k, v in row.items()}
    protected["answer_choices"] = ([c.strip().replace(protector, "|||")
                                    for c in env.from_string(choices).render(**protected).split("|||")]
                                   if choices else None)
    return [p.replace(protector, "|||").strip() for p in env.from_string(jinja).render(**protected).split("|||")]


@pytest.fixture()
def promptsource_file(tmp_path: Path) -> Path:
    path = tmp_path / "reviews" / "templates.yaml"
    path.parent.mkdir()
    path.write_text(PROMPTSOURCE_YAML, encoding="utf-8")
    return path


def test_promptsource_file_renders_exact_strings(promptsource_file: Path) -> None:
    pleased, only_positive = load_templates(promptsource_file)
    assert (pleased.id, pleased.name, pleased.dataset) == ("0a1b2c3d-0000-4000-8000-000000000001", "pleased", "reviews")
    assert pleased.metadata.original_task is True and pleased.metadata.metrics == ["Accuracy"]
    assert pleased.apply(ROWS[0]) == ("Here is a review: Sharp ||| pipes in text\nWas the reviewer pleased?", "good")
    assert pleased.apply(ROWS[1]) == ("Here is a review:   Dull. \nWas the reviewer pleased?", "bad")
    assert pleased.answer_choices(ROWS[0]) == ["bad", "good"]
    assert only_positive.apply(ROWS[0]) == ("Title: Pipes\nx>y y>x", "Pipes x")
    assert only_positive.answer_choices(ROWS[0]) == ["Pipes", "something else"]
    assert only_positive.apply(ROWS[1]) is None  # the target sits in a branch not taken
    for template in (pleased, only_positive):
        for row in ROWS:
            expected = promptsource_reference(template.jinja, template.answer_choices_jinja, row)
            got = template.apply(row)
            assert (list(got) if got else expected[:1]) == expected


def test_unlabeled_rows_give_none(promptsource_file: Path) -> None:
    pleased = load_templates(promptsource_file)[0]
    for label in (-1, None, ""):
        assert pleased.apply({**ROWS[0], "label": label}) is None  # not answer_choices[-1]
    assert pleased.apply({k: v for k, v in ROWS[0].items() if k != "label"}) is None


def test_missing_field_error_names_template_dataset_and_row(promptsource_file: Path) -> None:
    pleased = load_templates(promptsource_file)[0]
    with pytest.raises(TemplateError) as error:
        pleased.apply({"id": "row-7", "label": 1})
    message = str(error.value)
    assert "'pleased'" in message and "reviews" in message and "row-7" in message and "'text' is undefined" in message


def test_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("dataset: evil\ntemplates:\n  - name: escape\n"
                    "    prompt: \"{{ ''.__class__.__mro__ }}\"\n    target: x\n", encoding="utf-8")
    (template,) = load_templates(path)
    with pytest.raises(TemplateError, match="sandbox"):
        template.apply({"id": "0"})


def test_random_filters_are_seeded_per_row(tmp_path: Path) -> None:
    path = tmp_path / "pick.yaml"
    path.write_text("dataset: pick\ntemplates:\n  - name: pick\n"
                    "    prompt: \"{{ words | choice }} {{ words | random }}\"\n    target: \"{{ label }}\"\n",
                    encoding="utf-8")
    (template,) = load_templates(path)
    rows = [{"id": str(i), "words": list("abcdefghij"), "label": 1} for i in range(50)]
    first = [template.apply(row) for row in rows]
    assert first == [template.apply(row) for row in reversed(rows)][::-1]  # order does not matter
    assert len({p for p, _ in first}) > 10  # but rows differ
    assert first != [template.apply(row, seed=1) for row in rows]


def test_shipped_library_covers_12_tasks_and_checks_clean() -> None:
    files = sorted((ROOT / "templates").glob("*.yaml"))
    assert len(files) >= 12
    import yaml

    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rows = [{"id": str(i), **row} for i, row in enumerate(data["examples"])]
        results = check_all(load_templates(path), rows, sorted({k for row in rows for k in row}))
        assert results and all(r.ok for r in results), [(path.name, r.template.name, r.problem())
                                                         for r in results if not r.ok]


def _recipe(tmp_path: Path, output: str, **template: object) -> object:
    params = {"templates": "sentiment", "k": 2, "seed": 3,
              "fewshot": {"path": str(FIXTURES / "sentiment_train.csv"), "k": 2}, **template}
    data = {"read": {"format": "dataset", "paths": [str(FIXTURES / "sentiment_test.csv"),
                                                    str(FIXTURES / "sentiment_train.csv")],
                     "options": {"split": "test"}},
            "steps": [{"template": params}], "write": {"output": str(tmp_path / output)}}
    return load_recipe(None, data=data)


def test_template_step_counts_unlabeled_and_is_identical_across_worker_counts(tmp_path: Path) -> None:
    one = build(_recipe(tmp_path, "one"), show_progress=False)
    two_recipe = _recipe(tmp_path, "two")
    two_recipe.workers = 2
    build(two_recipe, show_progress=False)
    step = one["counts"]["steps"][1]
    assert step["dropped"] == {"unlabeled": 2}  # label -1 twice in sentiment_test.csv
    labeled = 18 - 2
    assert one["counts"]["written"] == 2 * labeled and step["added"] == labeled  # k=2: one extra per row
    assert one["schema"] == "EXAMPLE"
    first, second = read_shards(tmp_path / "one").to_pylist(), read_shards(tmp_path / "two").to_pylist()
    assert sorted(first, key=lambda r: r["id"]) == sorted(second, key=lambda r: r["id"])
    rejected = read_shards(tmp_path / "one" / "rejected").to_pylist()
    assert sorted(load_meta(r["meta"])["row"]["id"] for r in rejected) == ["te-6", "te-9"]
    example = next(r for r in first if r["id"].startswith("te-0#"))
    meta = load_meta(example["meta"])
    assert len(example["messages"]) == 6 and len(meta["fewshot_ids"]) == 2  # two demonstrations as turns
    assert example["messages"][-1]["content"] in meta["choices"]


def test_template_error_in_a_build_names_file_and_row(tmp_path: Path) -> None:
    data = tmp_path / "reviews.jsonl"
    data.write_text('{"text": "fine", "label": 1}\n{"review": "no text field", "label": 0}\n', encoding="utf-8")
    recipe = load_recipe(None, data={"read": {"format": "dataset", "paths": [str(data)]},
                                     "steps": [{"template": {"templates": "sentiment", "names": ["mood_word"]}}],
                                     "write": {"output": str(tmp_path / "out")}})
    with pytest.raises(TemplateError) as error:
        build(recipe, show_progress=False)
    assert "mood_word" in str(error.value) and "sentiment" in str(error.value)
    assert f"row 1 of {data}[train]" in str(error.value) and "'text' are None" in str(error.value)


def test_dataset_reader_formats_splits_and_bad_lines(tmp_path: Path) -> None:
    import datasets

    from instruct.io.readers.dataset import load_split

    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}),
                          "test": datasets.Dataset.from_dict({"text": ["d", "e"], "label": [1, 1]})}
                         ).save_to_disk(str(folder))
    loaded, split, first = load_split(str(folder), "train[1:]")
    assert (loaded["text"], split, first) == (["b", "c"], "train", 1)
    loaded.to_parquet(str(tmp_path / "part.parquet"))
    assert load_split(str(tmp_path / "part.parquet"))[0]["text"] == ["b", "c"]
    with pytest.raises(InputError, match="no split 'dev'"):
        load_split(str(folder), "dev")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": 1}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(InputError, match=f"{bad}:2: invalid JSON"):
        load_split(str(bad))


def _example_source(folder: Path, name: str, rows: int) -> Path:
    table = examples_table({"id": f"{name}-{i}", "source": name, "meta": {},
                            "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
                           for i in range(rows))
    write_table(table, folder / name / "shards" / "part-0000.arrow")
    return folder / name


def test_mixture_hits_requested_proportions_deterministically(tmp_path: Path) -> None:
    from instruct.mixture import MixConfig, MixSource, MixWrite, mix

    sizes, weights = {"a": 9000, "b": 5000, "c": 2500}, {"a": 0.5, "b": 0.3, "c": 0.2}
    sources = [MixSource(name=n, shards=str(_example_source(tmp_path, n, size)), weight=weights[n])
               for n, size in sizes.items()]

    def run(output: str, seed: int = 0) -> tuple[dict, list[dict]]:
        config = MixConfig(sources=sources, total=10_000, seed=seed, write=MixWrite(output=str(tmp_path / output)))
        return mix(config, show_progress=False), read_shards(tmp_path / output).to_pylist()

    manifest, rows = run("mix")
    assert manifest["written"] == len(rows) == 10_000
    counts = {n: sum(r["source"] == n for r in rows) for n in sizes}
    for name, share in weights.items():
        assert abs(counts[name] / 10_000 - share) <= 0.01
        entry = next(s for s in manifest["sources"] if s["name"] == name)
        assert entry["taken"] == counts[name] and abs(entry["realised_share"] - share) <= 0.01
    assert len({r["id"] for r in rows}) == 10_000
    assert [r["id"] for r in rows] == [r["id"] for r in run("again")[1]]
    assert {r["id"] for r in rows} != {r["id"] for r in run("other", seed=1)[1]}


def test_mixture_caps_share_the_rest_by_weight() -> None:
    from instruct.mixture import quotas

    assert quotas([9000, 5000, 400], [0.5, 0.3, 0.2], [None, None, None], 10_000) == [6000, 3600, 400]
    assert quotas([9000, 5000, 4000], None, [1000, None, None], None) == [1000, 5000, 4000]
    assert quotas([70, 50, 40], [0.5, 0.3, 0.2], [None] * 3, 1000, repeat=True) == [500, 300, 200]


def test_export_formats_round_trip(tmp_path: Path) -> None:
    from instruct.io.export import export

    table = examples_table([
        {"id": "one", "source": "s", "meta": {}, "messages": [{"role": "user", "content": "Q?"},
                                                              {"role": "assistant", "content": "A."}]},
        {"id": "two", "source": "s", "meta": {}, "messages": [
            {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}])
    write_table(table, tmp_path / "run" / "shards" / "x-0000.arrow")
    for name in ("alpaca", "sharegpt", "openai"):
        written, skipped = export(tmp_path / "run", name, tmp_path / f"{name}.jsonl")
        records = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert written == len(records) == 2 and not skipped  # Alpaca holds earlier exchanges as `history`
        assert [to_example(r)["messages"] for r in records] == [row["messages"] for row in table.to_pylist()]


def test_cli_labeled_pipeline_export_check_and_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from instruct.cli import main

    monkeypatch.chdir(tmp_path)  # the shipped recipes read data/generated/labeled/, which `instruct samples` writes
    shutil.copytree(FIXTURES, tmp_path / "data" / "generated" / "labeled")
    runner = CliRunner()
    built = runner.invoke(main, ["build", str(ROOT / "pipelines/labeled.yaml"), "--output", str(tmp_path / "labeled")])
    assert built.exit_code == 0, built.output
    exported = runner.invoke(main, ["export", str(tmp_path / "labeled"), "--format", "openai",
                                    "--output", str(tmp_path / "labeled.jsonl")])
    assert exported.exit_code == 0, exported.output
    lines = (tmp_path / "labeled.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == json.loads((tmp_path / "labeled" / "manifest.json").read_text())["counts"]["written"] > 0
    assert runner.invoke(main, ["templates", "check"]).exit_code == 0
    # a folder called "on" is YAML's True: --output must reach the recipe as a path, not as YAML
    mixed = runner.invoke(main, ["mix", str(ROOT / "pipelines/mixture.yaml"), "--output", "on"])
    assert mixed.exit_code == 0, mixed.output
    manifest = json.loads((tmp_path / "on" / "manifest.json").read_text())
    assert manifest["written"] == 24 and {s["name"] for s in manifest["sources"]} == {"sentiment", "nli",
                                                                                      "extractive_qa", "passages"}
    assert manifest["schema"] == "MIXED"  # the passages are DOCUMENT rows
    built = runner.invoke(main, ["build", str(ROOT / "pipelines/mixture.yaml"), "--output", "null"])
    assert built.exit_code == 0 and (tmp_path / "null" / "manifest.json").is_file(), built.output
    refused = runner.invoke(main, ["build", str(ROOT / "pipelines/mixture.yaml"), "--workers", "2"])
    assert refused.exit_code != 0 and "mixture recipe takes --output" in refused.output


def test_templates_check_fails_on_a_field_the_data_lacks(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from instruct.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: nli\ntemplates:\n  - name: wrong_field\n    prompt: '{{ sentence }}'\n"
                   "    target: '{{ label }}'\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["templates", "check", str(FIXTURES / "nli.jsonl"), "--templates", str(bad)])
    assert result.exit_code == 1 and "FAIL" in result.output and "sentence" in result.output


def test_step_on_document_rows_with_inline_fewshot_and_system_prompt() -> None:
    from instruct.schema import documents_table
    from instruct.templates.step import TemplateStep

    documents = documents_table([
        {"id": f"d{i}", "text": premise, "source": "jsonl", "url_or_path": f"nli.jsonl:{i + 1}",
         "meta": {"premise": premise, "hypothesis": hypothesis, "label": label}}
        for i, (premise, hypothesis, label) in enumerate([("A dog sleeps.", "An animal rests.", 0),
                                                           ("A dog sleeps.", "A cat sleeps.", 2)])])
    step = TemplateStep(templates=["nli"], names=["relation_label"], system="Be brief.",
                        fewshot={"path": str(FIXTURES / "nli.jsonl"), "k": 2, "style": "inline"})
    step.ensure_setup()
    output = step.apply(documents)
    assert output.reasons == [None, None]
    first = output.table.to_pylist()[0]
    system, user, assistant = first["messages"]
    assert system == {"role": "system", "content": "Be brief."} and assistant["content"] == "entailment"
    assert user["content"].count("Label the relation") == 3  # two inlined demonstrations, then the row
    assert user["content"].endswith("1. A dog sleeps.\n2. An animal rests.")
    assert load_meta(first["meta"])["choices"] == ["entailment", "neutral", "contradiction"]
