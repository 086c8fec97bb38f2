"""Generation backends: every one turns prompts (anything with `messages` and `tools`: a `Prompt`, an eval case)
into `Generation`s, greedy by default. Each implements the `Backend` protocol.

- `TransformersBackend`: local, batched, left-padded, stopping at the end-of-turn token, with a LoRA adapter
  applied on top of the base without merging.
- `EndpointBackend`: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI, `tunesmith
  serve`), with the key taken from an environment variable, a concurrency limit and retries with backoff.
- `VLLMBackend`: vLLM in-process when it is installed (GPU); a clear error when it is not.
- `LlamaCppBackend`: a GGUF file run by llama.cpp (llama-cpp-python) when it is installed, as Ollama and
  llama-server run it: the tokenizer, chat template and stop token stored in the file.

    backend = TransformersBackend(resolve_model("builtin:smollm2-135m-instruct"), adapter="run/adapter")
    backend = EndpointBackend("http://127.0.0.1:8000/v1", model="my-model", api_key_env="OPENAI_API_KEY")
    outputs = backend.generate(cases, max_new_tokens=64)
    outputs = backend.generate(cases, max_new_tokens=64, constraint=task_constraint("json", schema, replies, []))

Every backend takes a `constraint` (`tunesmith.generate.decoding.Constraint`): transformers decodes through the
constraint's logits processor, an endpoint gets the matching OpenAI `response_format`, llama.cpp a GBNF grammar,
vLLM its structured-output parameters.

Each backend has a `fingerprint` (what produced the outputs: model content, adapter content, precision; or URL and
model name) and `prompt_key(case)` (exactly what it sends), which key the generation cache.

One module per backend (`local.py`: transformers, `endpoint.py`, `vllm_engine.py`, `llama_cpp_file.py`);
`protocol.py` holds the base and types they share, `wire.py` the progress bar, OpenAI wire messages and short errors.
"""

from tunesmith.generate.backends.endpoint import EndpointBackend
from tunesmith.generate.backends.llama_cpp_file import LlamaCppBackend
from tunesmith.generate.backends.local import MERGE_CHECK_MAX_PARAMS, TransformersBackend
from tunesmith.generate.backends.protocol import Backend, GenerateRequest, Generation, Prompt, PromptLike
from tunesmith.generate.backends.vllm_engine import VLLMBackend

__all__ = [
    "MERGE_CHECK_MAX_PARAMS",
    "Backend",
    "EndpointBackend",
    "GenerateRequest",
    "Generation",
    "LlamaCppBackend",
    "Prompt",
    "PromptLike",
    "TransformersBackend",
    "VLLMBackend",
]
