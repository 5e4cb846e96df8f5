"""The generation-engine flags of `generate`, `bench` and `critique`, spelled and explained once.

They override the `generate:` section of `--engine-config` (the same section a loop config has).
"""

from __future__ import annotations

BACKEND_HELP = ("Generation engine: hf (in-process transformers) | vllm (in-process vLLM) | server (Hone starts "
                "--server-command for the model and stops it after) | openai (a server at --base-url). "
                "Default: the --engine-config section, else hf.")
ENGINE_CONFIG_HELP = "YAML with a `generate:` section (a loop config works) or that section alone; flags override it."
SERVER_COMMAND_HELP = ("--backend server: the command that serves {model} on {port}, e.g. "
                       "'.venv-vllm/bin/vllm serve {model} --host {host} --port {port}' (default: vllm serve ...). "
                       "It gets Hone's prompt token ids on /v1/completions; a server that takes chat messages only "
                       "(transformers serve) needs `server_prompt: messages` in --engine-config.")
