"""`instruct serve`: an OpenAI-compatible server over a local model, for offline synth and annotation."""
