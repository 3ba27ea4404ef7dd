"""The saved-bytes study: per variant and module, with the FP32-SE dense reference's ratio."""

import pytest

from tqpinn.studies.saved_bytes import variant_saved_bytes


def test_quick_poisson_full_pipeline_keeps_less_than_fp32_se():
    rows = variant_saved_bytes("poisson2d", ["fp32_se_dense", "full_pipeline"], budget="quick")
    assert rows["fp32_se_dense"]["vs_reference"] == 1.0
    full = rows["full_pipeline"]
    assert full["total"] == pytest.approx(sum(full["per_module"].values()))
    assert full["plain"] < full["packed"]  # what the quantized network keeps is packed
    assert full["vs_reference"] < 0.5


def test_unknown_variant_names_the_choices():
    with pytest.raises(KeyError, match="fp32_se_dense"):
        variant_saved_bytes("poisson2d", ["fp32_dense"], budget="quick")
