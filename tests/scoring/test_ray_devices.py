"""``runtime.devices`` (several GPUs of one machine) for the Ray engine: the checks and the pool it asks for, on CPU.

What runs here: the device list is checked against the machine's CUDA device count (distinct, non-negative, present),
mapped onto ``CUDA_VISIBLE_DEVICES`` for the local Ray instance (through an existing mask), turned into one actor per
GPU with ``actor_gpus=1``, and refused where it cannot apply (a running or remote cluster; models not on CUDA) before
anything starts. What does NOT run here (no GPU on this machine, and the lent device has no Ray): a scoring run on 2+
GPUs; each actor then sees its own GPU as ``cuda:0`` (Ray sets ``CUDA_VISIBLE_DEVICES`` per actor,
https://docs.ray.io/en/latest/ray-core/scheduling/accelerators.html) and its provenance ends in ``/gpu<id>``."""

from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from harness.scoring.ray_engine import (  # noqa: E402
    check_devices,
    ensure_ray,
    ray_options,
    score_manifest_ray,
    visible_devices,
)


def test_check_devices_accepts_present_distinct_indices():
    assert check_devices([1, 0], available=2) == [1, 0]
    assert check_devices(("3",), available=4) == [3]


@pytest.mark.parametrize(("devices", "available", "message"), [
    ([0, 0], 2, "distinct GPU indices"),
    ([-1], 2, "distinct GPU indices"),
    ([], 2, "distinct GPU indices"),
    ([0, 2], 2, r"has 2 CUDA device\(s\) \(indices 0\.\.1\)"),
    ([0], 0, "no CUDA device here"),
])
def test_check_devices_refuses_in_one_line(devices, available, message):
    with pytest.raises(ValueError, match=message):
        check_devices(devices, available)


def test_visible_devices_maps_through_an_existing_mask():
    assert visible_devices([0, 1], None) == "0,1"
    assert visible_devices([2], "") == "2"
    assert visible_devices([1], "2,3") == "3"  # torch's cuda:1 under CUDA_VISIBLE_DEVICES=2,3 is GPU 3
    assert visible_devices([0, 1], " 5, 7 ") == "5,7"


def test_ray_options_one_actor_per_listed_gpu():
    rt = OmegaConf.create({"threads": 2, "devices": [0, 1], "ray": {"actors": 1, "actor_cpus": 2.0}})
    opts = ray_options(rt, available=2)
    assert opts["actors"] == 2 and opts["actor_gpus"] == 1.0 and opts["devices"] == [0, 1]
    assert opts["actor_cpus"] == 2.0 and opts["threads"] == 2  # the rest of runtime.ray still applies
    plain = ray_options(OmegaConf.create({"threads": 2, "ray": {"actors": 3}}))
    assert plain["actors"] == 3 and plain["actor_gpus"] == 0.0 and "devices" not in plain
    assert "max_in_flight" not in plain and "wait_for_actors_s" not in plain  # Ray Data's defaults
    tuned = ray_options(OmegaConf.create({"ray": {"max_in_flight": 1, "wait_for_actors_s": 300}}))
    assert tuned["max_in_flight"] == 1 and tuned["wait_for_actors_s"] == 300.0
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        ray_options(rt, available=1)


def test_devices_refused_on_a_cluster_it_does_not_start(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    with pytest.raises(ValueError, match="on a running Ray cluster"):
        ensure_ray(devices=[0])
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ValueError, match="on a running Ray cluster"):
        ensure_ray(address="10.0.0.1:6379", devices=[0, 1])


def test_devices_need_cuda_models():
    with pytest.raises(ValueError, match=r"runtime.devices=\[0, 1\] needs runtime.device=cuda, got 'cpu'"):
        score_manifest_ray(pd.DataFrame(), None, None, None, None, devices=[0, 1], device="cpu")


def test_a_pool_that_cannot_be_scheduled_is_refused_in_one_line():
    """2 actors x 1 CPU + a 0.25-CPU decode task on a 2-CPU instance: Ray would wait for ever (measured: the default
    NUAA run with runtime.ray.actors=2 hung with an idle machine); refused, naming the keys and a value that fits."""
    from harness.scoring.ray_engine import RayOptions, check_resources

    with pytest.raises(ValueError, match=r"2 actors x actor_cpus 1 \+ decode_cpus 0.25 = 2.25 CPUs, but this Ray "
                                         r"instance has 2: .*actor_cpus <= 0.875") as e:
        check_resources(RayOptions(actors=2, actor_cpus=1.0), {"CPU": 2.0})
    assert "\n" not in str(e.value)
    check_resources(RayOptions(actors=2, actor_cpus=0.75), {"CPU": 2.0})  # 1.75 CPUs: fits
    check_resources(RayOptions(actors=1), {"CPU": 2.0})  # the shipped default
    with pytest.raises(ValueError, match="actor_gpus 1 GPUs, but this Ray instance has 1"):
        check_resources(RayOptions(actors=2, actor_cpus=0.5, actor_gpus=1.0), {"CPU": 2.0, "GPU": 1.0})
