"""Full-size builds from the shipped real configs count the real models' parameters."""

from __future__ import annotations

import pytest

from nmm_core.fullsize import build_full_size

# configs/PROVENANCE.md: counts from the real configs, agreeing with the hubs' weight totals.
REAL_PARAMETERS = {
    "qwen2_vl": 2_208_985_600,
    "idefics3": 2_246_272_880,
    "llava": 7_063_427_072,
    "tinyllava": 3_217_417_280,  # with Phi-2's head bias, as the published model
    "opt_clip": 6_658_473_984,  # the OPT-6.7B language model of GILL
    "moondream": 1_866_919_792,  # the 2024-05-20 .. 2024-08-26 layout (moondream2.json notes)
}


@pytest.mark.parametrize("family", sorted(REAL_PARAMETERS))
def test_full_size_build_on_meta_has_the_real_parameter_count(family):
    model = build_full_size(family, device="meta")
    assert sum(p.numel() for p in model.parameters()) == REAL_PARAMETERS[family]
