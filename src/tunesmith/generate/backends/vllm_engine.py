"""`VLLMBackend`: vLLM in-process when it is installed (GPU), with its structured-output parameters for a
constraint; a clear error when it is not installed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tunesmith.chat import render_prompt
from tunesmith.errors import Problem, TunesmithError
from tunesmith.generate.backends.protocol import Backend, GenerateRequest, Generation, PromptLike
from tunesmith.generate.decoding import Constraint
from tunesmith.models import (
    ModelRef,
    dir_identity,
)


class VLLMBackend(Backend):
    """vLLM in-process (GPU). Greedy, the model's chat template, LoRA adapters through vLLM's LoRARequest."""

    def __init__(self, model_ref: ModelRef, adapter: str | Path | None = None) -> None:
        try:
            import vllm
        except ImportError:
            raise TunesmithError(
                "vLLM is not installed",
                [
                    Problem(
                        "backend vllm",
                        "the vllm package is not importable here",
                        "pip install vllm on a CUDA machine, or use the transformers backend",
                    )
                ],
            ) from None
        self.vllm = vllm
        self.llm = vllm.LLM(
            model=str(model_ref.path), enable_lora=adapter is not None, trust_remote_code=model_ref.trust_remote_code
        )
        self.tok = self.llm.get_tokenizer()
        self.lora = vllm.lora.request.LoRARequest("adapter", 1, str(adapter)) if adapter is not None else None
        adapter_id = dir_identity(Path(adapter)) if adapter is not None else None
        self.fingerprint = json.dumps({"model": model_ref.identity, "adapter": adapter_id, "backend": "vllm"})

    def prompt_key(self, case: PromptLike) -> str:
        return render_prompt(self.tok, case.messages, case.tools)

    def answer(self, cases: list[PromptLike], request: GenerateRequest) -> list[Generation]:
        """Greedy replies in case order; a `constraint` becomes vLLM's structured-output parameters."""
        params = self.vllm.SamplingParams(
            temperature=0.0, max_tokens=request.max_new_tokens, **self._structured(request.constraint)
        )
        began = time.perf_counter()
        outs = self.llm.generate([self.prompt_key(c) for c in cases], params, lora_request=self.lora)
        per_case = (time.perf_counter() - began) / max(1, len(cases))
        results = []
        for i, out in enumerate(outs):
            comp = out.outputs[0]
            gen = Generation(comp.text, len(comp.token_ids), comp.finish_reason == "length", per_case)
            results.append(gen)
            request.done(i, gen)
        return results

    def _structured(self, constraint: Constraint | None) -> dict:
        """`SamplingParams` keywords for a constraint: `structured_outputs` (vLLM >= 0.10) or `guided_decoding`
        (older releases), with a JSON Schema, any JSON, or a label choice."""
        if constraint is None:
            return {}
        spec = (
            {"json": constraint.schema}
            if constraint.kind == "json_schema"
            else {"json_object": True}
            if constraint.kind == "json_object"
            else {"choice": list(constraint.choices)}
        )
        params = getattr(self.vllm.sampling_params, "StructuredOutputsParams", None)
        if params is not None:
            return {"structured_outputs": params(**spec)}
        guided = getattr(self.vllm.sampling_params, "GuidedDecodingParams", None)
        if guided is not None:
            return {"guided_decoding": guided(**spec)}
        raise TunesmithError(
            "This vLLM has no structured outputs",
            [
                Problem(
                    "backend vllm",
                    f"vllm {getattr(self.vllm, '__version__', '?')} has neither StructuredOutputsParams "
                    "nor GuidedDecodingParams",
                    "upgrade vllm, or set eval.decoding: free",
                )
            ],
        )
