"""Generation engines by name, and the one config section that picks one (loop YAML `generate:`, command flags).

Each engine lives in its own module and is imported only when chosen, so a missing optional engine (vLLM)
costs nothing until asked for. `open_engine` returns a Generator with `close()`: an in-process model is freed,
a server Hone started is stopped with its whole process group.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hone.errors import HoneError, option, problem

Backend = Literal["hf", "vllm", "server", "openai"]

# name -> module defining `open_engine(config, model, log_path) -> Generator` (one file per engine)
ENGINES: dict[str, str] = {
    "hf": "hone.generate.hf",
    "vllm": "hone.generate.vllm",
    "server": "hone.generate.server",
    "openai": "hone.generate.openai_compat",
}

# `--generation-config vllm`: the sampling parameters are Hone's alone, not defaults from the model's
# generation_config.json (top_k, repetition_penalty...) that the hf engine and a stage's fingerprint never see.
DEFAULT_SERVER_COMMAND = ("vllm serve {model} --host {host} --port {port} --seed {seed} --dtype {dtype} "
                          "--generation-config vllm "
                          "--tensor-parallel-size {tensor_parallel_size} --data-parallel-size {data_parallel_size} "
                          "--gpu-memory-utilization {gpu_memory_utilization}")


class GenerateConfig(BaseModel):
    """How Hone generates: which engine, and that engine's settings. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "hf"
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(None, description="None: bf16 on GPU, fp32 CPU")
    device: str | None = Field(None, description="hf: cpu | cuda (None: cuda when available)")
    trust_remote_code: bool = False
    seed: int = Field(0, description="engine seed (vllm, server); sampling seeds come from the stage")
    # vllm (in-process) and the default server command
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1, description="model replicas (each of tensor_parallel_size GPUs); "
                                    "vLLM balances the requests over them")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    max_model_len: int | None = Field(None, ge=16)
    # server: Hone starts it for each model, waits for /v1/models, stops its process group afterwards
    server_command: str = Field(DEFAULT_SERVER_COMMAND, description="placeholders: {model} {host} {port} {seed} "
                                "{tensor_parallel_size} {data_parallel_size} {gpu_memory_utilization} {dtype}")
    server_prompt: Literal["token_ids", "messages"] = Field(
        "token_ids", description="token_ids: Hone's rendered prompt as token ids to /v1/completions, answer ids "
        "decoded by Hone where the server returns them (vLLM); messages: chat messages to /v1/chat/completions, "
        "rendered and decoded by the server (a server that takes no token ids, e.g. `transformers serve`)")
    port: int | None = Field(None, ge=1, le=65535, description="None: a free port")
    startup_timeout: float = Field(900.0, gt=0, description="seconds to wait for /v1/models")
    concurrency: int = Field(32, ge=1, description="requests in flight (server, openai)")
    request_timeout: float = Field(600.0, gt=0)
    # openai: a server somebody else runs
    base_url: str | None = None
    served_model: str | None = Field(None, description="openai: the model name the server knows")

    @model_validator(mode="after")
    def _replicas_need_vllm(self) -> "GenerateConfig":
        if self.data_parallel_size > 1 and self.backend not in ("vllm", "server"):
            raise ValueError(f"data_parallel_size needs backend vllm or server (backend {self.backend} runs one "
                             "model)")
        return self

    def override(self, **flags: Any) -> "GenerateConfig":
        """This config with the flags that were given (not None) replacing its values; errors name the flag."""
        given = {k: v for k, v in flags.items() if v is not None}
        if not given:
            return self
        try:
            return GenerateConfig.model_validate({**self.model_dump(), **given})
        except ValidationError as e:
            loc, msg = problem(e)
            raise HoneError(f"{option(loc)}: {msg}") from None


def load_generate_config(path: str | os.PathLike | None) -> GenerateConfig:
    """The `generate:` section of a YAML file (a loop config or a file holding just that section)."""
    if path is None:
        return GenerateConfig()
    from hone.config import load_yaml, validate_config

    data = load_yaml(path)
    if "generate" in data:
        return validate_config(data, _Wrapper, path).generate
    return validate_config(data, GenerateConfig, path)


class _Wrapper(BaseModel):
    model_config = ConfigDict(extra="ignore")
    generate: GenerateConfig


def engine_dtype(config: GenerateConfig) -> str:
    """The dtype the engine computes in. hf resolves its default here (bf16 on a GPU, fp32 on CPU); so do vLLM
    and a server command on a machine without a GPU, where vLLM's "auto" would be bf16 and its answers would
    differ from hf's; on a GPU they decide from the model's config ("auto")."""
    if config.dtype or config.backend == "openai":
        return config.dtype or "auto"
    from hone.models.loading import default_device, default_dtype

    device = (config.device if config.backend == "hf" else None) or default_device()
    return default_dtype(device) if config.backend == "hf" or device == "cpu" else "auto"


def model_ref(config: GenerateConfig, model: str | os.PathLike) -> dict[str, Any]:
    """What a stage's generations depend on besides its sampling parameters: the model, the engine and how it
    computes (dtype; tensor parallel size; the server command), so answers of different engines never mix. Not
    which data-parallel replica answered: replicas hold the same weights."""
    if config.backend == "openai":
        return {"engine": "openai", "served_model": config.served_model or str(model), "base_url": config.base_url}
    ref: dict[str, Any] = {"model": model, "engine": config.backend, "dtype": engine_dtype(config)}
    if config.backend != "hf":
        ref["tensor_parallel_size"] = config.tensor_parallel_size
    if config.backend == "server":
        ref["server_command"] = config.server_command
        ref["server_prompt"] = config.server_prompt
    return ref


def check_model(config: GenerateConfig, model: str | os.PathLike) -> None:
    """Fail before any work: a model folder with a usable tokenizer (every engine but `openai` reads it)."""
    if config.backend == "openai":
        if not config.base_url:
            raise HoneError("--backend openai needs --base-url (the server somebody else runs)")
        return
    from hone.models.loading import inspect_model_dir, load_tokenizer

    inspect_model_dir(model)
    load_tokenizer(model, trust_remote_code=config.trust_remote_code)
    if config.backend == "vllm":
        from hone.generate.vllm import import_vllm

        import_vllm()
    elif config.backend == "server":
        import shutil

        from hone.generate.server import server_args

        program = server_args(config.server_command, str(model), 0, config)[0]
        if shutil.which(program) is None:
            raise HoneError(f"generate.server_command: {program!r} is not an executable on PATH "
                            "(install the server there, or give its full path)")


def open_engine(config: GenerateConfig, model: str | os.PathLike, log_path: str | os.PathLike | None = None):
    """A ready Generator for `model` with the chosen engine; call its `close()` when the stage is done."""
    import importlib

    module = importlib.import_module(ENGINES[config.backend])
    return module.open_engine(config, str(model), Path(log_path) if log_path else None)


class Engine:
    """An engine opened on first use (a stage found finished never loads a model or starts a server), closed
    once: `with Engine(...) as engine: run_generate(engine, ...)`."""

    def __init__(self, config: GenerateConfig, model: str | os.PathLike, log_path: str | os.PathLike | None = None):
        self.config, self.model, self.log_path = config, str(model), log_path
        self._generator: Any = None

    def __call__(self) -> Any:
        if self._generator is None:
            self._generator = open_engine(self.config, self.model, self.log_path)
        return self._generator

    def close(self) -> None:
        generator, self._generator = self._generator, None
        if generator is not None and hasattr(generator, "close"):
            generator.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EnginePool:
    """One open engine at a time, for a run that generates with several models in turn (the loop): loading an 8B
    model or starting its server twice a round costs minutes. `close()` before training frees the GPU for it; a
    server's log goes to the folder the first request for its model names."""

    def __init__(self, config: GenerateConfig):
        self.config = config
        self._engine: Engine | None = None

    def get(self, model: str | os.PathLike, log_dir: str | os.PathLike):
        if self._engine is None or self._engine.model != str(model):
            self.close()
            self._engine = Engine(self.config, model, Path(log_dir) / "server.log")
        return self._engine()

    def factory(self, model: str | os.PathLike, log_dir: str | os.PathLike):
        """A generator factory for a stage (`make_generator`): the engine opens only if the stage generates."""
        return lambda: self.get(model, log_dir)

    def lazy(self, model: str | os.PathLike, log_dir: str | os.PathLike) -> "LazyGenerator":
        return LazyGenerator(self, model, log_dir)

    def ref(self, model: str | os.PathLike) -> dict[str, Any]:
        return model_ref(self.config, model)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class LazyGenerator:
    """A generator that opens the pool's engine on its first request: a stage found finished on resume never loads
    a model or starts a server. Named like the engines' own generators (the model path), so manifests match."""

    def __init__(self, pool: EnginePool, model: str | os.PathLike, log_dir: str | os.PathLike):
        self.pool, self.model, self.log_dir, self.name = pool, model, log_dir, str(model)

    def generate(self, requests, params, progress=None):
        return self.pool.get(self.model, self.log_dir).generate(requests, params, progress)
