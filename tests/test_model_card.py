"""Every promoted model of a demo run carries a Hugging Face model card whose model-index equals its bench."""

import json

from huggingface_hub import ModelCard, metadata_load

from hone.grade import grader_versions


def test_promoted_models_carry_a_model_card_with_the_bench_figures(demo_run):
    promoted = [(demo_run / arm, r) for arm in ("verified", "control")
                for r in json.loads((demo_run / arm / "summary.json").read_text())["rounds"]
                if r["round"] and r["promoted"]]
    assert promoted, "the demo promoted no model"
    for arm_dir, r in promoted:
        rd = arm_dir / f"round-{r['round']}"
        card_path = rd / "model" / "README.md"
        card = ModelCard.load(card_path)
        meta = metadata_load(card_path)
        assert meta["library_name"] == "transformers" and meta["base_model"]
        bench = json.loads((rd / "bench" / "bench.json").read_text())
        results = {e.dataset_name: e.metric_value for e in card.data.eval_results}
        assert results == {name: s["accuracy"]["accuracy"] for name, s in bench["suites"].items()}
        (index,) = meta["model-index"]
        assert index["name"] == f"{arm_dir.name}-round-{r['round']}"
        gate = json.loads((rd / "gate.json").read_text())
        for name, s in gate["suites"].items():
            assert f"| {name} | {s['n']} |" in card.text and f"{s['mcnemar_p']:.3g}" in card.text
        assert all(v in card.text for v in grader_versions().values())
        assert "verification clean" in card.text and "hone loop --config" in card.text
        assert f"{json.loads((rd / 'model' / 'lineage.json').read_text())['adapter']['lineage']['data']['examples']}"\
               " rows" in card.text

