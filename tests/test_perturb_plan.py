"""The pair-dataset plan: type mix by quota, levels, source balance, donors, determinism."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mtavg.perturb.plan import (
    AVBENCH_MIX,
    MIXES,
    PlanError,
    SourceClip,
    parse_mix,
    plan_dataset,
    plan_negatives,
    quotas,
    realised_mix,
    safe_id,
)


def sources(n: int = 12, categories: int = 3, audio: bool = True) -> list[SourceClip]:
    return [SourceClip(f"c{i:02d}", f"cat{i % categories}/c{i:02d}.mp4", 10.0, 720, audio,
                       category=f"cat{i % categories}", generator=f"g{i % 2}") for i in range(n)]


def test_avbench_mix_is_the_published_one():
    assert AVBENCH_MIX == {"random_mismatch": 0.25, "semantic_mismatch": 0.18, "time_shift": 0.17,
                           "speed_change": 0.15, "pitch_shift": 0.10, "noise": 0.10, "filter": 0.05}
    assert sum(AVBENCH_MIX.values()) == pytest.approx(1.0)
    assert parse_mix("avbench") == pytest.approx(AVBENCH_MIX)


def test_realised_mix_over_1000_is_within_3_points_of_every_share():
    planned = plan_negatives(sources(), parse_mix("avbench"), 1000, seed=7)
    assert len(planned) == 1000
    shares = {k: v["share"] for k, v in realised_mix(planned).items()}
    assert set(shares) == set(AVBENCH_MIX)
    for name, want in AVBENCH_MIX.items():
        assert abs(shares[name] - want) <= 0.03, name
        assert abs(shares[name] - want) <= 0.0005  # quotas: off by at most half a negative in 1000


@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_quotas_sum_to_n_and_follow_largest_remainders(n):
    mix = parse_mix("avbench")
    q = quotas(mix, n)
    assert sum(q.values()) == n
    for k, c in q.items():
        assert abs(c - mix[k] * n) < 1.0
    # 1.5 / 0.9 / 0.6 -> floors 1, 0, 0; the two largest remainders (b, c) get the two left
    assert quotas({"a": 0.5, "b": 0.3, "c": 0.2}, 3) == {"a": 1, "b": 1, "c": 1}
    # 2.8 / 0.8 / 0.4: a and b tie on remainder 0.8 and both get one
    assert quotas({"a": 0.7, "b": 0.2, "c": 0.1}, 4) == {"a": 3, "b": 1, "c": 0}


def test_parse_mix_custom_file_and_errors(tmp_path):
    assert parse_mix("time_shift=3, noise=1") == {"time_shift": 0.75, "noise": 0.25}
    assert parse_mix("time_shift=1,noise=0") == {"time_shift": 1.0}
    f = tmp_path / "mix.json"
    f.write_text(json.dumps({"freeze": 1, "blur": 1}))
    assert parse_mix(str(f)) == {"freeze": 0.5, "blur": 0.5}
    assert set(parse_mix("all")) == set(MIXES["all"])
    with pytest.raises(PlanError, match="unknown perturbation.*wobble"):
        parse_mix("wobble=1")
    with pytest.raises(PlanError, match="not name=weight"):
        parse_mix("time_shift")
    with pytest.raises(PlanError, match="not a number"):
        parse_mix("time_shift=lots")
    with pytest.raises(PlanError, match=">= 0"):
        parse_mix({"noise": -1})
    with pytest.raises(PlanError, match="no positive weight"):
        parse_mix("noise=0")


def test_plan_is_deterministic_per_seed():
    a = [p.as_dict() for p in plan_dataset(sources(), parse_mix("all"), 60, seed=3)]
    b = [p.as_dict() for p in plan_dataset(sources(), parse_mix("all"), 60, seed=3)]
    c = [p.as_dict() for p in plan_dataset(sources(), parse_mix("all"), 60, seed=4)]
    assert a == b and a != c


def test_levels_both_split_each_type_in_half():
    planned = plan_negatives(sources(), parse_mix("time_shift=1,noise=1"), 40, level="both")
    by = Counter((p.perturbation, p.level) for p in planned)
    assert by == {("time_shift", "easy"): 10, ("time_shift", "hard"): 10, ("noise", "easy"): 10,
                  ("noise", "hard"): 10}
    hard = plan_negatives(sources(), parse_mix("time_shift=1"), 20, level="hard")
    assert {p.level for p in hard} == {"hard"}
    assert all(100 <= abs(p.params["shift_ms"]) <= 250 for p in hard)
    with pytest.raises(PlanError, match="level"):
        plan_negatives(sources(), parse_mix("time_shift=1"), 2, level="medium")


def test_negatives_spread_evenly_over_sources():
    planned = plan_negatives(sources(12), parse_mix("avbench"), 120, seed=1)
    use = Counter(p.source_id for p in planned)
    assert len(use) == 12 and max(use.values()) - min(use.values()) <= 1


def test_mismatch_donors_are_other_clips_and_semantic_ones_another_category():
    src = sources(9, categories=3)
    cat = {s.clip_id: s.category for s in src}
    planned = plan_negatives(src, parse_mix("random_mismatch=1,semantic_mismatch=1"), 200, seed=2)
    for p in planned:
        assert p.params["donor"] != p.source_id
        assert p.params["donor_path"] == next(s.path for s in src if s.clip_id == p.params["donor"])
        if p.perturbation == "semantic_mismatch":
            assert cat[p.params["donor"]] != cat[p.source_id]
            assert p.params["donor_category"] == cat[p.params["donor"]]


def test_a_type_no_source_can_take_is_an_error_naming_why():
    one_category = sources(4, categories=1)
    with pytest.raises(PlanError, match="semantic_mismatch.*different category"):
        plan_negatives(one_category, parse_mix("semantic_mismatch=1"), 3)
    silent = sources(3, audio=False)
    with pytest.raises(PlanError, match="no audio stream"):
        plan_negatives(silent, parse_mix("noise=1"), 1)
    # picture perturbations still work on clips without sound
    assert len(plan_negatives(silent, parse_mix("video"), 8)) == 8
    with pytest.raises(PlanError, match="no source clips"):
        plan_negatives([], parse_mix("noise=1"), 1)


def test_positives_cover_exactly_the_sources_used():
    planned = plan_dataset(sources(12), parse_mix("noise=1"), 5, seed=0)
    negatives = [p for p in planned if p.role == "negative"]
    positives = [p for p in planned if p.role == "positive"]
    assert {p.source_id for p in positives} == {p.source_id for p in negatives}
    assert all(p.clip_id == f"pos-{p.source_id}" and p.perturbation == "none" for p in positives)
    assert len({p.clip_id for p in planned}) == len(planned)


def test_safe_id():
    assert safe_id("case1_ltx2.mp4") == "case1_ltx2"
    assert safe_id("ads/My Clip (1).mp4") == "ads__My_Clip_1_"
