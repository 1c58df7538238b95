import numpy as np
import pytest

from harness.metrics import (
    BPCER_PRESETS,
    acer,
    apcer_at_bpcer,
    apcer_max,
    apcer_per_species,
    bpcer,
    bpcer_at_apcer,
    bpcer_preset,
    hter,
    iapar,
    joint_surface,
    non_response_rate,
    riapar,
)

ATT = [0.9, 0.2, 0.6, 0.4, 0.8]
SPE = ["print", "print", "replay", "replay", "mask"]
BF = [0.3, 0.7, 0.55]


def test_apcer_hand():
    per = apcer_per_species(ATT, SPE, 0.5)
    assert list(per) == ["mask", "print", "replay"]
    assert [(r.k, r.n) for r in per.values()] == [(1, 1), (1, 2), (1, 2)]
    sp, worst = apcer_max(ATT, SPE, 0.5)
    assert sp == "mask" and worst.value == 1.0
    per = apcer_per_species(ATT, SPE, 0.6)  # tie at threshold: attack accepted (classified bona fide)
    assert per["replay"].k == 1
    b = bpcer(BF, 0.55)
    assert (b.k, b.n) == (1, 3)


def test_apcer_max_tie_break_deterministic():
    sp, r = apcer_max([1, 0, 1, 0], ["b", "b", "a", "a"], 0.5)
    assert sp == "a" and r.value == 0.5


def test_bpcer_at_apcer_hand_unreachable():
    out = bpcer_at_apcer(BF, ATT, SPE, 0.5)
    assert out["threshold"] == np.nextafter(0.8, 1)  # mask (N=1) must be rejected entirely
    assert not out["reachable"] and "mask (N=1)" in out["note"]
    assert out["bpcer"].k == 3 and out["apcer_max"].value == 0.5 and out["apcer_max_species"] == "print"
    assert out["standard"] == "ISO/IEC 30107-3:2023"


def test_bpcer_at_apcer_worst_species_binds():
    a = np.r_[np.arange(10) / 10, np.arange(10) / 10 + 0.3]  # species "hi" has higher scores
    sp = ["lo"] * 10 + ["hi"] * 10
    bf = np.linspace(0, 2, 41)
    out = bpcer_at_apcer(bf, a, sp, 0.2)
    # "hi": 10 scores 0.3..1.2, 2 allowed -> threshold just above 3rd largest (1.0)
    assert out["threshold"] == np.nextafter(1.0, 2) and out["reachable"]
    assert out["per_species"]["hi"].k == 2 and out["per_species"]["lo"].k == 0
    assert out["apcer_max_species"] == "hi"
    assert out["bpcer"].k == np.count_nonzero(bf < out["threshold"])
    assert out["name"] is None


def test_presets():
    assert BPCER_PRESETS == {"BPCER20": 0.05, "BPCER100": 0.01, "BPCER1000": 0.001}
    rng = np.random.default_rng(0)
    att = rng.normal(0, 1, 2000)
    sp = ["a", "b"] * 1000
    bf = rng.normal(3, 1, 1000)
    o = bpcer_preset(bf, att, sp, "BPCER20")
    assert o["name"] == "BPCER20" and o["apcer_max"].value <= 0.05
    assert bpcer_preset(bf, att, sp, "BPCER1000")["reachable"]
    with pytest.raises(ValueError, match="unknown preset"):
        bpcer_preset(bf, att, sp, "BPCER5")


def test_apcer_at_bpcer():
    bf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    out = apcer_at_bpcer(bf, ATT, SPE, 0.1)
    assert out["threshold"] == 0.2 and out["bpcer"].k == 1
    assert out["per_species"]["print"].k == 2  # 0.9 and 0.2 are >= 0.2


def test_non_iso_labels():
    a = acer(BF, ATT, SPE, 0.5)
    assert a["standard"] == "non-ISO" and a["acer"] == pytest.approx((1.0 + 1 / 3) / 2)
    h = hter([0, 1], [1, 2], 1.0)
    assert h["standard"] == "non-ISO" and h["hter"] == pytest.approx(0.25)
    r = non_response_rate(2, 100)
    assert (r.k, r.n) == (2, 100)


def test_pad_errors():
    with pytest.raises(ValueError, match="species is required"):
        apcer_per_species(ATT, None, 0.5)
    with pytest.raises(ValueError, match="species has 2 entries"):
        apcer_per_species(ATT, ["a", "b"], 0.5)
    with pytest.raises(ValueError, match="attack_scores is empty"):
        apcer_max([], [], 0.5)
    with pytest.raises(ValueError, match="bona_fide_scores contain 1 NaN"):
        bpcer([np.nan, 1], 0.5)


# ------------------------------------------------------------------------------------------------------ system
AM = [0.9, 0.9, 0.1, 0.8]
AP = [0.9, 0.1, 0.9, 0.6]


def test_iapar_riapar_hand():
    r = iapar(AM, AP, 0.5, 0.5)
    assert (r.k, r.n) == (2, 4)
    pooled, per = iapar(AM, AP, 0.5, 0.5, species=["x", "x", "y", "y"])
    assert pooled == r and (per["x"].k, per["x"].n, per["y"].k, per["y"].n) == (1, 2, 1, 2)
    rr = riapar(AM, AP, 0.5, 0.5)
    assert (rr.k, rr.n) == (2, 3) and "conditional" in rr.method
    _, per = riapar(AM, AP, 0.5, 0.5, species=["x", "x", "y", "y"])
    assert (per["y"].k, per["y"].n) == (1, 1)
    with pytest.raises(ValueError, match="no attack presentation reaches t_match"):
        riapar(AM, AP, 5.0, 0.5)
    with pytest.raises(ValueError, match="paired"):
        iapar(AM, AP[:3], 0.5, 0.5)


def test_joint_surface_brute_force():
    rng = np.random.default_rng(5)
    data = {w: (np.round(rng.normal(mu, 1, n), 1), np.round(rng.normal(nu, 1, n), 1))
            for w, mu, nu, n in (("g", 2, 2, 300), ("i", 0, 2, 500), ("a", 1.5, 0, 200))}
    gm = np.array([1.0, -0.5, 0.3, 2.0, 0.3])  # unsorted, duplicated, values equal to scores
    gp = np.array([0.5, 0.0, 1.2])
    out = joint_surface(*data["g"], *data["i"], *data["a"], gm, gp)
    for key, (m, p) in (("genuine_accept", data["g"]), ("zero_effort_fmr", data["i"]), ("iapar", data["a"])):
        assert out[key].shape == (5, 3)
        for a, tm in enumerate(gm):
            for b, tp in enumerate(gp):
                k = np.count_nonzero((m >= tm) & (p >= tp))
                assert out[f"{key}_k"][a, b] == k
                assert out[key][a, b] == k / m.size
    assert out["iapar"][1, 1] == iapar(*data["a"], gm[1], gp[1]).value
    np.testing.assert_allclose(out["system_fnmr"], 1 - out["genuine_accept"])
