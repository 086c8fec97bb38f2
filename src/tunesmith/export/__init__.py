"""Exports: the PEFT adapter and merged weights (GGUF and Ollama come next)."""
