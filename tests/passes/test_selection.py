import pytest

from trtc.errors import SpecError
from trtc.passes import DEFAULT, select_passes
from trtc.spec.model import FusionSpec


def test_default_none_list_and_disable():
    assert [p.name for p in select_passes(FusionSpec())] == DEFAULT
    assert select_passes(FusionSpec(passes="none")) == []
    assert [p.name for p in select_passes(FusionSpec(passes=("merge-siblings", "fold-batchnorm")))] == [
        "merge-siblings",
        "fold-batchnorm",
    ]
    assert "merge-siblings" not in [p.name for p in select_passes(FusionSpec(disable=("merge-siblings",)))]


@pytest.mark.parametrize(
    "fusion,message",
    [
        (
            FusionSpec(passes=("fold-batchnrom",)),
            "fusion.passes: unknown pass 'fold-batchnrom'; did you mean 'fold-batchnorm'?",
        ),
        (
            FusionSpec(disable=("zzz",)),
            "fusion.disable: unknown pass 'zzz'; valid passes: remove-noops, fold-constants, fold-batchnorm, fold-bias, merge-siblings",
        ),
    ],
)
def test_unknown_pass_names(fusion, message):
    with pytest.raises(SpecError) as caught:
        select_passes(fusion)
    assert caught.value.message == message


class _RenamesForever:
    """A pass that always finds something to change: the driver must stop and say so."""

    name, description = "renames-forever", "test pass"

    def run(self, model, context):
        from trtc.passes.base import Change

        node = model.graph.node[0]
        node.name += "'"
        return [Change(self.name, "rename", (node.name[:-1],), (node.name,))]


def test_passes_that_never_settle_stop_after_the_last_round_and_the_report_says_so():
    from tests import models
    from trtc.passes.base import MAX_ROUNDS, PassContext, run_passes, settled
    from trtc.report.passes import passes_section

    runs = run_passes(models.conv_bn_relu(), [_RenamesForever()], PassContext())
    assert len(runs) == MAX_ROUNDS and not settled(runs)
    section = passes_section(runs)
    assert (section["rounds"], section["settled"]) == (MAX_ROUNDS, False)
    calm = run_passes(models.conv_bn_relu(), select_passes(FusionSpec()), PassContext())
    assert settled(calm) and passes_section(calm)["settled"]
