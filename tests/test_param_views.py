"""Merging straight into live parameters (``engines/param_views.py``, ``MergePlan.build(into=...)``).

The probe must find a slice only where the model's own loader would copy the tensor there unchanged, must not
touch the live weights while it looks, and must send every other name (transposed, split, scaled, padded,
written into a buffer) back through ``load_weights``. Checked on a small module with hand-written loaders of
each kind (the vLLM classes themselves are covered by test_engine_swap and test_architectures, whose plain
layout runs this path against independent references).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mergesweep.engines.param_views import find_param_views
from mergesweep.merge import get_method
from tests.test_merge_point import toy_plan


class Model(nn.Module):
    """q and k fused into ``qk`` (as vLLM fuses q/k/v); ``t`` stored transposed; ``pad`` with padding rows;
    ``scaled`` multiplied on load; ``buf`` a buffer, not a parameter; ``plain`` a one-to-one copy."""

    def __init__(self) -> None:
        super().__init__()
        self.qk = nn.Parameter(torch.randn(6, 4))
        self.t = nn.Parameter(torch.randn(4, 4))
        self.pad = nn.Parameter(torch.randn(5, 4))
        self.scaled = nn.Parameter(torch.randn(3))
        self.plain = nn.Parameter(torch.randn(2, 4))
        self.register_buffer("buf", torch.randn(3))

    def load_weights(self, weights):
        loaded = set()
        for name, w in weights:
            if name in ("q", "k"):
                start = 0 if name == "q" else 4
                self.qk.data.narrow(0, start, w.shape[0]).copy_(w.narrow(0, 0, w.shape[0]))
                loaded.add("qk")
            elif name == "t":
                self.t.data.copy_(w.t())
            elif name == "pad":
                self.pad.data[: w.shape[0]].copy_(w)
                self.pad.data[w.shape[0] :].fill_(0)
                loaded.add("pad")
                continue
            elif name == "scaled":
                self.scaled.data.copy_(w * 2)
            elif name == "buf":
                self.buf.copy_(w)
                continue
            else:
                getattr(self, name).data.copy_(w.detach())
            loaded.add(name)
        return loaded


SHAPES = {"q": (4, 4), "k": (2, 4), "t": (4, 4), "pad": (4, 4), "scaled": (3,), "buf": (3,), "plain": (2, 4)}


def test_probe_finds_whole_copies_only_and_leaves_weights_alone():
    model = Model()
    before = {n: t.clone() for n, t in model.state_dict().items()}
    views = find_param_views(model, SHAPES, torch.float32)
    assert set(views.dests) == {"q", "k", "plain"}
    assert sorted(views.via_loader) == ["buf", "pad", "scaled", "t"]
    assert views.covered == {"qk", "plain"}
    for n, t in model.state_dict().items():
        assert torch.equal(t, before[n]), f"probing changed {n}"
    views.dests["q"][0].fill_(1.0)  # the recorded slice is the live parameter's rows 0..3
    assert torch.equal(model.qk[:4], torch.ones(4, 4)) and torch.equal(model.qk[4:], before["qk"][4:])


def test_a_fused_parameter_with_one_shard_via_the_loader_goes_whole_to_the_loader():
    class Fused(Model):
        def load_weights(self, weights):
            out = set()
            for name, w in weights:
                if name == "k":  # k arrives transposed: the loader, not a copy, decides its values
                    self.qk.data[4:].copy_(w.t().contiguous().view(2, 4))
                    out.add("qk")
                else:
                    out |= super().load_weights([(name, w)])
            return out

    views = find_param_views(Fused(), {"q": (4, 4), "k": (4, 2)}, torch.float32)
    assert views.dests == {} and sorted(views.via_loader) == ["k", "q"] and views.covered == set()


@pytest.mark.parametrize("how", ["new storage", "permuted view of the same storage"])
def test_a_re_pointed_parameter_is_caught_before_a_write(how):
    model = Model()
    views = find_param_views(model, {"q": (4, 4), "k": (2, 4)}, torch.float32)
    views.check_live(model)
    if how == "new storage":
        model.qk.data = torch.zeros(6, 4)
    else:  # what vLLM's parameter.py does to some parameters after loading
        model.qk.data = model.qk.data.view(4, 6).t()
    with pytest.raises(RuntimeError, match="changed its storage or layout"):
        views.check_live(model)


class One(nn.Module):
    """One parameter ``w`` (4 x 4) and a loader given as a function: the probe's guard against each way a loader
    could do more than a whole copy, found in review; each must fall back and leave ``w`` unchanged."""

    def __init__(self, load) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4, dtype=torch.bfloat16))
        self.register_buffer("wt", self.w.data.t().contiguous())
        self.load = load

    def load_weights(self, weights):
        for _, x in weights:
            self.load(self, x)
        return {"w"}


def _swallows(m, x):
    try:
        m.w.data.copy_(x.t())
    except Exception:  # a loader's own fallback must not hide the probe's stop
        m.w.data.copy_(x)


def _branches_on_values(m, x):
    m.w.data.copy_(x if bool(x.abs().sum() > 0) else -x)


def _derived_cache(m, x):
    m.w.data.copy_(x)
    m.wt.copy_(m.w.data.t())


LOADERS = {
    "torch.ops copy_": lambda m, x: torch.ops.aten.copy_.default(m.w.data, x),
    "index_put_": lambda m, x: torch.ops.aten.index_put_.default(m.w.data, [torch.tensor([0])], x[0]),
    "set_": lambda m, x: m.w.data.set_(x.contiguous()),
    "swallowed stop": _swallows,
    "reinterpreting view": lambda m, x: m.w.data.view(torch.int16).copy_(x.view(torch.int16)),
    "narrowing cast": lambda m, x: m.w.data.copy_(x.to(torch.float16)),
    "value read": _branches_on_values,
    "derived cache after the copy": _derived_cache,
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loaders_that_do_more_than_a_copy_fall_back_untouched(loader):
    model = One(LOADERS[loader])
    before, ptr = {n: t.clone() for n, t in model.state_dict().items()}, model.w.data_ptr()
    views = find_param_views(model, {"w": (4, 4)}, torch.bfloat16)
    assert views.dests == {} and views.via_loader == ["w"], loader
    for n, t in model.state_dict().items():
        assert torch.equal(t, before[n]), f"probing changed {n} ({loader})"
    assert model.w.data_ptr() == ptr, f"probing re-pointed w ({loader})"


def test_a_plain_whole_copy_is_direct():
    views = find_param_views(One(lambda m, x: m.w.data.copy_(x)), {"w": (4, 4)}, torch.bfloat16)
    assert list(views.dests) == ["w"] and views.covered == {"w"}


def test_plan_writes_into_given_tensors_and_yields_the_rest():
    plan = toy_plan(reuse_outputs=True)
    shapes = plan.shapes()
    names = sorted(shapes)
    into = {n: [torch.full(shapes[n], float("nan"))] for n in names[::2]}
    got = {n: t.clone() for n, t in plan.build(get_method("linear"), 0.3, torch.float32, into=into)}
    assert set(got) == set(plan.names) - set(into)
    ref = {n: t.clone() for n, t in toy_plan().build(get_method("linear"), 0.3, torch.float32)}
    for n in names:
        assert torch.equal(into[n][0] if n in into else got[n], ref[n]), n
    bad = {names[0]: [torch.empty(1, *shapes[names[0]])]}
    with pytest.raises(ValueError, match="cannot write"):
        list(plan.build(get_method("linear"), 0.3, torch.float32, into=bad))


def test_a_target_of_another_dtype_gets_the_value_rounded_to_the_points_dtype():
    """A bf16 point written into an fp32 parameter holds what a loader copying the bf16 tensor would store."""
    plan = toy_plan(reuse_outputs=True)
    shapes = plan.shapes()
    into = {n: [torch.empty(s, dtype=torch.float32)] for n, s in shapes.items()}
    list(plan.build(get_method("linear"), 0.3, torch.bfloat16, into=into))
    ref = {n: t.clone() for n, t in toy_plan().build(get_method("linear"), 0.3, torch.bfloat16)}
    for n in shapes:
        assert torch.equal(into[n][0], ref[n].float()), n
