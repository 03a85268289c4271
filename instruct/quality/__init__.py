"""Model-based quality filtering: what rules miss (word salad, boilerplate, dumps, generated tables).

- `classifier`: hashed n-gram (or sentence-embedding) features + a linear model, saved as a
  versioned file with its held-out metrics.
- `steps`: the `quality_classifier` and `perplexity` pipeline steps.
- `annotate`: FineWeb-Edu style LLM scores (0-5) that become training labels.
"""
