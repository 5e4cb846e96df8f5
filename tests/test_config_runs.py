import json

import pytest
from pydantic import BaseModel, ConfigDict

from hone.config import load_config
from hone.errors import HoneError
from hone.runs import Stage, manifest_for


class Train(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = 1e-3
    steps: int = 10


class Loop(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    train: Train = Train()


def test_config_errors_name_file_line_and_key(tmp_path):
    p = tmp_path / "loop.yaml"
    p.write_text("name: demo\ntrain:\n  lr: fast\n")
    with pytest.raises(HoneError, match=rf"{p}:3: key `train.lr`: Input should be a valid number"):
        load_config(p, Loop)
    p.write_text("name: demo\ntrain:\n  stepz: 3\n")
    with pytest.raises(HoneError, match=r"key `train.stepz`: Extra inputs are not permitted"):
        load_config(p, Loop)
    p.write_text("name: [unclosed\n")
    with pytest.raises(HoneError, match=rf"{p}:2: invalid YAML"):
        load_config(p, Loop)
    p.write_text("- a\n- b\n")
    with pytest.raises(HoneError, match="top level must be a mapping"):
        load_config(p, Loop)
    p.write_text("name: demo\ntrain:\n  steps: 5\n")
    assert load_config(p, Loop).train.steps == 5


def test_stage_skips_only_when_inputs_and_config_match(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("one\n")
    out = tmp_path / "out.jsonl"
    stage = Stage(manifest_for(out), "demo", {"data": data}, {"k": 1})
    assert not stage.is_done()
    stage.start()
    assert not Stage(manifest_for(out), "demo", {"data": data}, {"k": 1}).is_done()  # running != done
    out.write_text("result\n")
    stage.finish({"out": out}, {"rows": 1})
    manifest = json.loads(manifest_for(out).read_text())
    assert manifest["status"] == "complete" and manifest["counts"] == {"rows": 1}
    assert manifest["versions"]["torch"].startswith("2.13")
    assert Stage(manifest_for(out), "demo", {"data": data}, {"k": 1}).is_done()
    assert not Stage(manifest_for(out), "demo", {"data": data}, {"k": 2}).is_done()
    data.write_text("two\n")
    assert not Stage(manifest_for(out), "demo", {"data": data}, {"k": 1}).is_done()
    data.write_text("one\n")
    out.unlink()
    assert not Stage(manifest_for(out), "demo", {"data": data}, {"k": 1}).is_done()
