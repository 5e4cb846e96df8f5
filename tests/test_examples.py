from pathlib import Path

import pytest

from hone.config import load_config
from hone.loop_config import LoopConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["llama-3.1-8b.yaml", "tiny.yaml"])
def test_example_loop_configs_validate(name):
    config = load_config(EXAMPLES / name, LoopConfig).resolve(EXAMPLES)
    assert config.heldout and config.train.method == "lora"
    assert all(p.is_absolute() for p in config.heldout.values())
