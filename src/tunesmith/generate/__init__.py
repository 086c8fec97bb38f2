"""Generation: model replies to prompts, below the data and eval layers that use them.

- `backends`: the `Backend` protocol and its implementations (transformers, an OpenAI-compatible endpoint, vLLM,
  llama.cpp), the `Prompt` they answer and the `Generation` they return.
- `decoding`: greedy decoding settings (`Decoding`) and structured-decoding constraints (`Constraint`), with
  `gbnf` writing a constraint as a llama.cpp grammar.
- `cache`: the generation cache (`generate_cached`).
"""
