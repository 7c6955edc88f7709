"""Recipe dataclasses and YAML validation: errors name the key path."""

from __future__ import annotations

import pytest

import prunekit.recover.recipe as R
from prunekit.recover.yaml_recipe import load_recipe, recipe_from_dict

GOOD = """
model: prunekit:mlp
data: {name: digits, limit: 128}
method: unstructured
criterion: l1
target: {ratio: 0.5}
schedule: {kind: cubic, steps: 4, start: 0.0, end: 0.5}
finetune: {epochs: 2, lr: 1e-2, checkpoint_every: 3}
distill: {temperature: 4.0, alpha: 0.7, hidden: [["1", "1"]]}
"""


def test_issue_example_constructs():
    r = R.Recipe(method="structured", criterion="taylor", target=R.TargetSpec(macs=0.5),
                 schedule=R.Cubic(steps=10, start=0, end=0.5), finetune=R.Finetune(epochs=2),
                 distill=R.Distill(temperature=4.0, alpha=0.7))
    assert r.amount == pytest.approx(0.5)
    assert r.fingerprint() == R.Recipe(**{**r.__dict__}).fingerprint()
    assert r.fingerprint() != R.Recipe(**{**r.__dict__, "seed": 1}).fingerprint()


def test_yaml_round_trip(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(GOOD)
    r = load_recipe(p)
    assert r.finetune.lr == 0.01 and r.schedule == R.Cubic(steps=4, start=0.0, end=0.5)
    assert r.distill.hidden == (("1", "1"),) and r.data == R.DataSpec("digits", 128)


@pytest.mark.parametrize("patch, message", [
    ({"finetune": {"epochs": 0}}, r"^finetune\.epochs: must be > 0"),
    ({"finetune": {"epoch": 2}}, r"^finetune\.epoch: unknown key"),
    ({"distil": {}}, r"^distil: unknown key"),
    ({"method": "magic"}, r"^method: unknown method 'magic'"),
    ({"schedule": {"kind": "cubic", "steps": 3, "start": 0.4, "end": 0.2}},
     r"^schedule\.end: must be >= start"),
    ({"schedule": {"kind": "cubic", "steps": 3, "end": 0.3}}, r"^schedule\.end: 0\.3 does not match"),
    ({"schedule": {"kind": "linear"}}, r"^schedule\.kind: unknown schedule 'linear'"),
    ({"target": {"macs": 0.5}}, r"^target: unreachable with method 'unstructured'"),
    ({"method": "nm", "pattern": "2:4", "target": {"ratio": 0.6}, "schedule": "oneshot"},
     r"^target: unreachable with pattern 2:4"),
    ({"distill": {"temperature": -1}}, r"^distill\.temperature: must be > 0"),
    ({"data": {"name": "imagenet"}}, r"^data\.name: unknown data 'imagenet'"),
    ({"finetune": {"optimizer": "lion"}}, r"^finetune\.optimizer: must be one of"),
    ({"target": {"ratio": 0.5, "macs": 0.5}}, r"^target: Target needs exactly one"),
])
def test_yaml_errors_name_the_key(patch, message):
    import yaml

    data = {**yaml.safe_load(GOOD), **patch}
    with pytest.raises(ValueError, match=message):
        recipe_from_dict(data)


def test_dataclass_errors():
    with pytest.raises(ValueError, match="^epochs: must be > 0"):
        R.Finetune(epochs=-1)
    with pytest.raises(ValueError, match="^pretrain: slimming needs"):
        R.Recipe(method="slimming", criterion="bn_scale", target=R.TargetSpec(ratio=0.5))
    with pytest.raises(ValueError, match="^target: method 'unstructured' needs a target"):
        R.Recipe()
    assert R.Recipe(method="nm", pattern="2:4").amount == 0.5
