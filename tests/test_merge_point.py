"""What a merge plan hands over explicitly: the point object (its tensors once, its merge time once they are
taken) and output-buffer reuse, chosen when the plan is built (``build_plan(..., reuse_outputs=...)``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from mergesweep.errors import MergeConfigError
from mergesweep.merge import get_method
from mergesweep.merge.plan import MergePlan
from mergesweep.merge.sources import build_plan

TOY = Path(__file__).resolve().parents[1] / "data" / "toy_pair"
MODEL = {"base": str(TOY / "base"), "instruct": str(TOY / "instruct")}


def toy_plan(reuse_outputs: bool = False) -> MergePlan:
    return build_plan(MODEL, {"name": "linear"}, "cpu", None, torch.float32, False, reuse_outputs=reuse_outputs)


@pytest.fixture(scope="module")
def plan() -> MergePlan:
    return toy_plan()


def test_merge_time_is_the_points_own_and_excludes_the_consumer(plan):
    point = plan.build(get_method("linear"), 0.5, torch.float32)
    with pytest.raises(RuntimeError, match="merge_s is known only once"):
        point.merge_s  # noqa: B018  (nothing merged yet)
    it = iter(point)
    next(it)
    with pytest.raises(RuntimeError, match="merge_s is known only once"):
        point.merge_s  # noqa: B018  (half a point is not a point)
    pause, n, t0 = 0.02, 1, time.perf_counter()
    for _ in it:
        time.sleep(pause)  # the consumer's time: loading into an engine
        n += 1
    total = time.perf_counter() - t0
    assert n == len(plan.names)
    assert 0 < point.merge_s <= total - (n - 1) * pause  # the sleeps are not merge time
    times = point.switch_times(total)
    assert times == {"merge_s": point.merge_s, "swap_s": total - point.merge_s}
    assert point.switch_times(point.merge_s / 2)["swap_s"] == 0.0  # never negative


def test_a_point_is_taken_once_and_points_do_not_share_state(plan):
    first = plan.build(get_method("linear"), 0.0, torch.float32)
    a = dict(first)
    with pytest.raises(RuntimeError, match="taken once"):
        iter(first)
    merge_s = first.merge_s
    second = plan.build(get_method("linear"), 1.0, torch.float32)
    b = dict(second)
    assert first.merge_s == merge_s != second.merge_s  # each point keeps the time of its own pass
    name = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(a[name], b[name])


def test_knobs_are_checked_when_the_point_is_built_not_when_it_is_taken(plan):
    with pytest.raises(MergeConfigError, match="density"):
        plan.build(get_method("linear"), 0.5, torch.float32, density=0.3)


@pytest.mark.parametrize("reuse", [False, True])
def test_build_plan_fixes_output_reuse_at_construction(reuse):
    plan = toy_plan(reuse_outputs=reuse)
    assert plan.reuse_outputs is reuse
    name = "model.layers.0.mlp.up_proj.weight"
    first = dict(plan.build(get_method("linear"), 0.0, torch.float32))  # keeps the first point's tensors alive
    expected = first[name].clone()
    second = dict(plan.build(get_method("linear"), 1.0, torch.float32))
    assert (first[name].data_ptr() == second[name].data_ptr()) is reuse
    assert torch.equal(first[name], expected) is not reuse  # recycled: the first point's tensor was overwritten
