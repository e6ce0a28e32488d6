"""Failure analysis (Eq. 9, Figs. 4/11/12/14 data) on a hand-made fixture with hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtavg.analysis import (
    average_rates,
    cooccurrence_correlation,
    error_count_distribution,
    failure_mode_rates,
    failure_rates,
    failure_summary,
    failure_target,
    metric_failure_links,
    rates_matrix,
)
from mtavg.analysis.failures import phi_correlation
from mtavg.annotations import AnnotatedFailure, VideoAnnotation
from mtavg.taxonomy import load_taxonomy

_SUB = {"dialogue_turn_taking_failure": "IP", "reaction_timing_failure": "IP", "expression_exaggeration": "EP",
        "missing_ambient_sound": "SD", "overpowering_background_audio": "SD", "character_continuity_break": "CT",
        "shot_progression_issues": "IG", "scene_consistency_drift": "EC", "visual_mood_drift": "MC"}


def _video(vid: str, gen: str, *failures: tuple[str, float | None, float | None]) -> VideoAnnotation:
    return VideoAnnotation(video_id=vid, generator=gen, failures=[
        AnnotatedFailure(sub_dimension=_SUB[m], failure_mode=m, start_s=a, end_s=b) for m, a, b in failures])


def fixture_annotations() -> list[VideoAnnotation]:
    """2 generators, 5 videos. genA: 3 videos (one clean); genB: 2 videos (one with 6 failures)."""
    return [
        _video("a1", "genA", ("dialogue_turn_taking_failure", 1, 2), ("dialogue_turn_taking_failure", 5, 6),
               ("missing_ambient_sound", None, None)),
        _video("a2", "genA"),
        _video("a3", "genA", ("reaction_timing_failure", 0, 8), ("expression_exaggeration", 2, 3)),
        _video("b1", "genB", ("missing_ambient_sound", 0, 8), ("character_continuity_break", 4, 4.5)),
        _video("b2", "genB", ("missing_ambient_sound", 0, 8), ("overpowering_background_audio", 1, 3),
               ("character_continuity_break", 2, 3), ("shot_progression_issues", 1, 4),
               ("scene_consistency_drift", 3, 3.5), ("visual_mood_drift", 5, 5.4)),
    ]


def test_fixture_modes_belong_to_their_sub_dimensions() -> None:
    tax = load_taxonomy()
    assert all(tax.failure_modes[m].sub_dimension == sd for m, sd in _SUB.items())


def test_failure_rates_eq9_percent_per_generator_videos() -> None:
    rates = failure_rates(fixture_annotations())
    assert list(rates) == ["genA", "genB"]
    assert list(rates["genA"]) == list(load_taxonomy().sub_dimensions)  # all ten, taxonomy order
    # genA, 3 videos: IP = 2 (a1) + 1 (a3) segments; SD = 1 unlocalised; EP = 1; the clean a2 counts.
    assert rates["genA"] == pytest.approx({"EP": 100 / 3, "MP": 0, "DP": 0, "IP": 100.0, "MC": 0, "EC": 0,
                                           "SD": 100 / 3, "IC": 0, "IG": 0, "CT": 0})
    # genB, 2 videos: SD = 1 + 2 = 3 segments -> 150 % (rates may exceed 100).
    assert rates["genB"] == pytest.approx({"EP": 0, "MP": 0, "DP": 0, "IP": 0, "MC": 50.0, "EC": 50.0,
                                           "SD": 150.0, "IC": 0, "IG": 50.0, "CT": 100.0})


def test_average_row_is_unweighted_mean_over_generators() -> None:
    avg = average_rates(failure_rates(fixture_annotations()))
    assert avg["SD"] == pytest.approx((100 / 3 + 150) / 2)
    assert avg["IP"] == pytest.approx(50.0)
    assert avg["EP"] == pytest.approx(50 / 3)
    assert avg["CT"] == pytest.approx(50.0)
    assert avg["DP"] == 0.0
    with pytest.raises(ValueError):
        average_rates({})


def test_rates_matrix_rows_cols_and_average_row() -> None:
    rows, cols, values = rates_matrix(failure_rates(fixture_annotations()))
    assert rows == ["genA", "genB", "Average"]
    assert cols[:4] == ["EP", "MP", "DP", "IP"]
    assert values.shape == (3, 10)
    assert values[1, cols.index("SD")] == pytest.approx(150.0)
    assert values[2, cols.index("SD")] == pytest.approx(275 / 3)
    rows2, _, values2 = rates_matrix(failure_rates(fixture_annotations()), average=False)
    assert rows2 == ["genA", "genB"] and values2.shape == (2, 10)


def test_failure_mode_rates_pooled_and_per_generator() -> None:
    rates = failure_mode_rates(fixture_annotations())
    assert list(rates) == ["all", "genA", "genB"]
    assert len(rates["all"]) == 45
    assert rates["all"]["missing_ambient_sound"] == pytest.approx(60.0)  # 3 segments / 5 videos
    assert rates["all"]["dialogue_turn_taking_failure"] == pytest.approx(40.0)
    assert rates["all"]["character_continuity_break"] == pytest.approx(40.0)
    assert rates["all"]["reaction_timing_failure"] == pytest.approx(20.0)
    assert rates["all"]["robotic_movement"] == 0.0
    assert rates["genA"]["dialogue_turn_taking_failure"] == pytest.approx(200 / 3)
    assert rates["genB"]["missing_ambient_sound"] == pytest.approx(100.0)
    assert sum(rates["all"].values()) == pytest.approx(100 * 13 / 5)  # 13 segments in all


def test_error_count_distribution_total_and_per_category() -> None:
    dist = error_count_distribution(fixture_annotations())
    assert list(dist) == ["total", "acting", "atmosphere", "cinematography"]
    # Segments per video: a1 3, a2 0, a3 2, b1 2, b2 6.
    assert dist["total"] == pytest.approx({"0": 20, "1": 0, "2": 40, "3": 20, "4": 0, "5+": 20})
    # Acting: a1 2, a3 2, others 0.
    assert dist["acting"] == pytest.approx({"0": 60, "1": 0, "2": 40, "3": 0, "4": 0, "5+": 0})
    # Atmosphere: a1 1, b1 1, b2 4 (SD 2, EC 1, MC 1).
    assert dist["atmosphere"] == pytest.approx({"0": 40, "1": 40, "2": 0, "3": 0, "4": 20, "5+": 0})
    # Cinematography: b1 1, b2 2.
    assert dist["cinematography"] == pytest.approx({"0": 60, "1": 20, "2": 20, "3": 0, "4": 0, "5+": 0})
    for scope in dist.values():
        assert sum(scope.values()) == pytest.approx(100.0)
    assert list(error_count_distribution(fixture_annotations(), max_bin=3)["total"]) == ["0", "1", "2", "3+"]
    with pytest.raises(ValueError):
        error_count_distribution([])


def test_cooccurrence_phi_values_by_hand() -> None:
    cooc = cooccurrence_correlation(fixture_annotations())
    assert cooc.n_videos == 5
    assert len(cooc.modes) == 9  # modes never seen are left out by default
    idx = {m: i for i, m in enumerate(cooc.modes)}
    r = cooc.matrix
    assert np.allclose(np.diag(r), 1.0) and np.allclose(r, r.T)
    # expression_exaggeration and reaction_timing_failure occur in exactly the same videos (a3).
    assert r[idx["expression_exaggeration"], idx["reaction_timing_failure"]] == pytest.approx(1.0)
    # [0,0,1,0,0] vs [1,0,0,0,0]: (0*3 - 1*1) / sqrt(1*4*1*4) = -0.25
    assert r[idx["expression_exaggeration"], idx["dialogue_turn_taking_failure"]] == pytest.approx(-0.25)
    # missing_ambient [1,0,0,1,1] vs continuity [0,0,0,1,1]: (2*2 - 1*0) / sqrt(3*2*2*3) = 2/3
    assert r[idx["missing_ambient_sound"], idx["character_continuity_break"]] == pytest.approx(2 / 3)
    # missing_ambient vs turn-taking [1,0,0,0,0]: (1*2 - 2*0) / sqrt(3*2*1*4) = 2/sqrt(24)
    assert r[idx["missing_ambient_sound"], idx["dialogue_turn_taking_failure"]] == pytest.approx(2 / 24**0.5)
    assert cooc.video_counts[idx["missing_ambient_sound"]] == 3
    assert cooc.constant == ()


def test_cooccurrence_cluster_order_puts_identical_modes_together() -> None:
    cooc = cooccurrence_correlation(fixture_annotations())
    assert sorted(cooc.order) == list(range(len(cooc.modes)))
    modes, matrix = cooc.ordered()
    pos = {m: i for i, m in enumerate(modes)}
    assert abs(pos["expression_exaggeration"] - pos["reaction_timing_failure"]) == 1
    b2_only = ["overpowering_background_audio", "shot_progression_issues", "scene_consistency_drift",
               "visual_mood_drift"]  # identical presence vectors -> one contiguous block
    block = sorted(pos[m] for m in b2_only)
    assert block == list(range(block[0], block[0] + 4))
    assert matrix[pos["missing_ambient_sound"], pos["character_continuity_break"]] == pytest.approx(2 / 3)


def test_constant_columns_give_zero_not_nan() -> None:
    anns = [_video("x1", "g", ("missing_ambient_sound", 0, 1), ("visual_mood_drift", 0, 1)),
            _video("x2", "g", ("missing_ambient_sound", 0, 1))]
    cooc = cooccurrence_correlation(anns, modes=["missing_ambient_sound", "visual_mood_drift", "robotic_movement"])
    assert np.isfinite(cooc.matrix).all()
    assert cooc.constant == ("missing_ambient_sound", "robotic_movement")  # in every video / in none
    assert cooc.matrix.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    corr, const = phi_correlation(np.ones((4, 2)))
    assert const.tolist() == [True, True] and corr.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(KeyError):
        cooccurrence_correlation(anns, modes=["not_a_mode"])
    with pytest.raises(ValueError):
        cooccurrence_correlation([])


def test_failure_summary_is_json_serialisable() -> None:
    summary = failure_summary(fixture_annotations())
    back = json.loads(json.dumps(summary))
    assert back["videos_per_generator"] == {"genA": 3, "genB": 2}
    assert back["failure_rates"]["genB"]["SD"] == pytest.approx(150.0)
    assert back["error_counts"]["total"]["5+"] == pytest.approx(20.0)
    assert len(back["cooccurrence"]["matrix"]) == 9


# ---------------------------------------------------------------- metrics vs failure rates
def _rates(total_by_gen: dict[str, float]) -> dict[str, dict[str, float]]:
    codes = list(load_taxonomy().sub_dimensions)
    return {g: {c: (t if c == "IP" else 0.0) for c in codes} for g, t in total_by_gen.items()}


def _summary() -> dict:
    def entry(offset: float, flat: float, n: int) -> dict:
        return {"n_clips": n, "n_failed": 0, "metrics": {
            "av_offset": {"n": n, "n_confident": n, "median_abs_offset_s": offset, "max_abs_offset_s": None},
            "frames": {"flicker": flat, "dominant": True, "clips_with_color_jumps": n}}}
    return {"all": entry(9.0, 0.5, 9), "g1": entry(1.0, 0.5, 3), "g2": entry(2.0, 0.5, 3),
            "g3": entry(3.0, 0.5, 3)}


def test_metric_failure_links_spearman_by_hand() -> None:
    links = metric_failure_links(_summary(), _rates({"g1": 10.0, "g2": 30.0, "g3": 20.0}))
    by = {lk.metric: lk for lk in links}
    # counts ("n", "n_confident", "clips_*"), None and booleans are not metrics
    assert set(by) == {"av_offset.median_abs_offset_s", "frames.flicker"}
    off = by["av_offset.median_abs_offset_s"]
    assert off.generators == ("g1", "g2", "g3")  # "all" is not a generator
    assert off.metric_values == (1.0, 2.0, 3.0) and off.failure_rates == (10.0, 30.0, 20.0)
    assert off.rho == pytest.approx(0.5)  # ranks y = 1,3,2: 1 - 6*2/(3*8)
    assert by["frames.flicker"].rho is None  # a constant metric has no rank correlation
    assert links[0].metric == "av_offset.median_abs_offset_s"  # defined rho sorts first
    only = metric_failure_links(_summary(), _rates({"g1": 1, "g2": 2, "g3": 3}), fields=["frames.flicker"])
    assert [lk.metric for lk in only] == ["frames.flicker"]
    with pytest.raises(KeyError):
        metric_failure_links(_summary(), _rates({"g1": 1, "g2": 2}), fields=["nope.x"])


def test_failure_target_total_category_sub_dimension() -> None:
    rates = failure_rates(fixture_annotations())
    assert failure_target(rates)["genB"] == pytest.approx(400.0)  # 8 segments / 2 videos
    assert failure_target(rates, "atmosphere")["genB"] == pytest.approx(250.0)
    assert failure_target(rates, "IP")["genA"] == pytest.approx(100.0)
    with pytest.raises(KeyError):
        failure_target(rates, "XX")
