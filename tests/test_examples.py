import re
import subprocess
from pathlib import Path

import pytest

from hone.config import load_config
from hone.loop_config import LoopConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["llama-3.1-8b.yaml", "llama-3.1-8b-grpo.yaml", "tiny.yaml", "cluster/loop.yaml"])
def test_example_loop_configs_validate(name):
    config = load_config(EXAMPLES / name, LoopConfig).resolve((EXAMPLES / name).parent)
    assert config.heldout and config.train.method == "lora"
    assert all(p.is_absolute() for p in config.heldout.values())


def test_cluster_recipe_parses_and_fits_together():
    """The sbatch script, its accelerate config and its loop YAML describe the same 2 nodes x 8 GPUs."""
    from accelerate.commands.config.config_args import load_config_from_file

    cluster = EXAMPLES / "cluster"
    loop = load_config(cluster / "loop.yaml", LoopConfig).resolve(cluster)
    accelerate = load_config_from_file(str(loop.train.accelerate_config))
    assert str(accelerate.distributed_type) == "DistributedType.FSDP"
    assert accelerate.fsdp_config["fsdp_version"] == 2 and accelerate.rdzv_backend == "c10d"
    assert accelerate.num_machines == 2 and accelerate.num_processes == loop.train.num_processes == 16
    assert loop.train.launcher == "accelerate" and loop.train.save_steps
    assert loop.generate.backend == "server" and loop.generate.data_parallel_size == 8
    assert "{data_parallel_size}" in loop.generate.server_command

    sbatch = (cluster / "hone-loop.sbatch").read_text()
    subprocess.run(["bash", "-n", str(cluster / "hone-loop.sbatch")], check=True)
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", sbatch, re.M))
    assert directives["nodes"] == "2" and directives["gpus-per-node"] == "8"
    assert int(directives["nodes"]) * int(directives["gpus-per-node"]) == loop.train.num_processes
    assert re.search(r'^hone loop --config "\$HONE_HOME/examples/cluster/loop.yaml"', sbatch, re.M)
