import pytest

from trtc.errors import SpecError
from trtc.passes import DEFAULT, select_passes


def test_default_none_list_and_disable():
    assert [p.name for p in select_passes({})] == DEFAULT
    assert select_passes({"passes": "none"}) == []
    assert [p.name for p in select_passes({"passes": ["merge-siblings", "fold-batchnorm"]})] == ["merge-siblings", "fold-batchnorm"]
    assert "merge-siblings" not in [p.name for p in select_passes({"disable": ["merge-siblings"]})]


@pytest.mark.parametrize("fusion,message", [
    ({"passes": ["fold-batchnrom"]}, "fusion.passes: unknown pass 'fold-batchnrom'; did you mean 'fold-batchnorm'?"),
    ({"disable": ["zzz"]}, "fusion.disable: unknown pass 'zzz'; valid passes: remove-noops, fold-constants, fold-batchnorm, fold-bias, merge-siblings"),
])
def test_unknown_pass_names(fusion, message):
    with pytest.raises(SpecError) as caught:
        select_passes(fusion)
    assert caught.value.message == message
