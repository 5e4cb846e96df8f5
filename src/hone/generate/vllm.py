"""The `vllm` engine: vLLM's in-process `LLM`, fed the token ids of Hone's chat contract (never a second template).

Every (task, sample) is one vLLM request with its own seed, derived from the stage seed and the request, so a
resumed stage samples each remaining request exactly as the first run would have; vLLM's prefix cache shares
the prompt between the samples of one task. vLLM is optional (a GPU extra): it is imported only when chosen.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from typing import Any, Iterator, Sequence

from hone.chat import cut_at_stop, stop_token_ids
from hone.errors import HoneError
from hone.generate.base import GenParams, Progress, Request
from hone.generate.fit import fit_prompts
from hone.records import Generation

# Requests handed to vLLM at once: large enough to keep its scheduler full, small enough that a killed stage
# loses little and the progress bar moves.
CHUNK = 512


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise HoneError(f"generate backend vllm: vLLM is not installed here ({e.msg}); install it on a GPU machine "
                        "with `pip install 'hone[vllm]'`, or run vLLM from its own environment with "
                        "`--backend server`") from None
    return vllm


class VLLMGenerator:
    def __init__(self, llm: Any, tokenizer: Any, name: str):
        self.llm, self.tokenizer, self.name = llm, tokenizer, name
        # requests whose prompt ids, as vLLM reports them, were the ids sent ("same") or not ("other")
        self.prompt_ids_reported: Counter[str] = Counter()

    @classmethod
    def from_dir(cls, path: str, config: Any) -> "VLLMGenerator":
        vllm = import_vllm()
        from hone.models.loading import inspect_model_dir, load_tokenizer

        from hone.generate.registry import engine_dtype

        inspect_model_dir(path)
        tok = load_tokenizer(path, trust_remote_code=config.trust_remote_code)
        # generation_config="vllm": Hone's sampling parameters only, not the model's generation_config.json defaults
        kwargs: dict[str, Any] = dict(model=path, tokenizer=path, tensor_parallel_size=config.tensor_parallel_size,
                                      gpu_memory_utilization=config.gpu_memory_utilization, seed=config.seed,
                                      dtype=engine_dtype(config), trust_remote_code=config.trust_remote_code,
                                      enable_prefix_caching=True, generation_config="vllm")
        if config.max_model_len:
            kwargs["max_model_len"] = config.max_model_len
        if config.data_parallel_size > 1:  # one engine core per replica; vLLM spreads the requests over them
            kwargs["data_parallel_size"] = config.data_parallel_size
        return cls(vllm.LLM(**kwargs), tok, name=path)

    def close(self) -> None:
        """Free the GPU for the next stage (training): vLLM holds most of its memory until shut down."""
        import gc

        llm, self.llm = self.llm, None
        shutdown = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def sampling(self, req: Request, params: GenParams, stops: list[int], room: int | None = None) -> Any:
        """`room`: tokens left in the context after the prompt (new tokens never run past the context)."""
        from vllm import SamplingParams

        seed = zlib.crc32(f"{params.seed}|{req.id}#{req.sample}".encode())
        max_tokens = min(params.max_new_tokens, room) if room else params.max_new_tokens
        return SamplingParams(n=1, temperature=params.temperature, top_p=params.top_p,
                              max_tokens=max_tokens, seed=None if params.greedy else seed,
                              stop_token_ids=stops, skip_special_tokens=True)

    def context_length(self) -> int | None:
        """vLLM's max_model_len: a longer prompt fails the whole `generate` call, so it is refused per item."""
        model_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        return getattr(model_config, "max_model_len", None)

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        tok = self.tokenizer
        stops = stop_token_ids(tok)
        context = self.context_length()
        encoded, refused = fit_prompts(tok, requests, context)
        for req, why in refused:
            yield Generation(id=req.id, sample=req.sample, model=self.name, output=why, finish_reason="error",
                             params=params.model_dump(exclude={"batch_size"}))
        if progress and refused:
            progress(len(refused))
        for start in range(0, len(encoded), CHUNK):
            part = encoded[start : start + CHUNK]
            prompts = [{"prompt_token_ids": ids} for _, ids in part]
            sampling = [self.sampling(r, params, stops, context - len(ids) if context else None) for r, ids in part]
            t0 = time.perf_counter()
            outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
            seconds = (time.perf_counter() - t0) / max(1, len(part))
            for (req, ids), out in zip(part, outputs):
                self.prompt_ids_reported["same" if list(out.prompt_token_ids or []) == ids else "other"] += 1
                completion = out.outputs[0]
                kept, stopped = cut_at_stop(tok, list(completion.token_ids))
                stopped = stopped or completion.finish_reason == "stop"
                yield Generation(id=req.id, sample=req.sample, model=self.name,
                                 output=tok.decode(kept, skip_special_tokens=True).strip(),
                                 finish_reason="stop" if stopped else "length",
                                 tokens=len(kept) + (1 if stopped else 0), seconds=round(seconds, 4),
                                 params=params.model_dump(exclude={"batch_size"}))
            if progress:
                progress(len(part))


def open_engine(config: Any, model: str, log_path: Any = None) -> VLLMGenerator:
    """The registry's entry (hone.generate.registry)."""
    return VLLMGenerator.from_dir(model, config)
