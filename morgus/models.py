"""Which model a call uses, how large its context window is, and what its tokens cost.

One place: MORGUS_MODEL (default), MORGUS_CODE_MODEL (BUILD and EXECUTE), the task's own `model` (wins), and
an optional JSON file MORGUS_MODEL_CONFIG = {"models": {"<name>": {"context_window": 128000,
"input_per_mtok": 2.5, "output_per_mtok": 10.0, "cached_input_per_mtok": 1.25}}} that extends or overrides the
built-in table. Unknown models get a conservative 32k window and no price (cost 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from morgus.contracts import Phase, TokenUsage

CODE_PHASES = (Phase.BUILD, Phase.EXECUTE)


@dataclass(frozen=True)
class ModelInfo:
    context_window: int = 32_000
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_price = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        return (
            (usage.prompt_tokens - cached) * self.input_per_mtok
            + cached * cached_price
            + usage.completion_tokens * self.output_per_mtok
        ) / 1_000_000


BUILT_IN: dict[str, ModelInfo] = {
    "gpt-4o": ModelInfo(128_000, 2.5, 10.0, 1.25),
    "gpt-4o-mini": ModelInfo(128_000, 0.15, 0.6, 0.075),
    "gpt-4.1": ModelInfo(1_047_576, 2.0, 8.0, 0.5),
    "gpt-4.1-mini": ModelInfo(1_047_576, 0.4, 1.6, 0.1),
    "o4-mini": ModelInfo(200_000, 1.1, 4.4, 0.275),
}


@lru_cache(maxsize=8)
def model_table(config_path: str | None) -> dict[str, ModelInfo]:
    table = dict(BUILT_IN)
    if config_path:
        data = json.loads(Path(config_path).read_text())
        for name, fields in data.get("models", {}).items():
            table[name] = replace(table.get(name, ModelInfo()), **fields)
    return table


def model_info(name: str, config_path: str | None) -> ModelInfo:
    return model_table(config_path).get(name, ModelInfo())


def price_known(task_model: str | None, default: str, code_model: str | None, config_path: str | None) -> bool:
    """Every model the task's calls are routed to has a price in the table (a free local model's zero included):
    its `cost_usd` is then its cost, else only its tokens mean something."""
    table = model_table(config_path)
    names = {choose_model(p, task_model, default, code_model) for p in Phase}
    return all(name in table for name in names)


def choose_model(phase: Phase, task_model: str | None, default: str, code_model: str | None) -> str:
    """The task's own model wins; BUILD and EXECUTE use the code model when one is set; else the default."""
    if task_model:
        return task_model
    if code_model and phase in CODE_PHASES:
        return code_model
    return default
