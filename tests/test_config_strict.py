"""Strict configuration (harness.config_schema): every option declared, unknown keys / bad types and ranges / unset
required values refused in one line (exit 2) before any scoring; a protocol that leaves the policy nothing to
choose on stops in one line instead of exiting 0 without thresholds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import harness.__main__  # noqa: F401  (registers the resolvers)
from harness.config_schema import (GROUPS, ConfigError, RunRequirementError, check_config, check_overrides,
                                   check_standard, check_thresholds)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
#: the group options whose config leaves a required value unset (???), and what a user sets for it
#: presets whose dataset needs a path the user gives (dataset=scores: the score files)
EXPERIMENT_REQUIRED = {"vendor_scores": ["dataset.files=/data/vendor/scores.csv"]}
REQUIRED = {("dataset", "csv"): ["dataset.csv=/data/kyc/manifest.csv"], ("dataset", "folder"): ["dataset.root=/data/in_house"],
            ("dataset", "scores"): ["dataset.files=/data/vendor/scores.csv"]}
RESULT_FILES = ("scores.csv", "trials.csv", "summary.json", "operating_point.json", "report.html")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


# ------------------------------------------------------------------------------ every option composes and passes


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS if g != "standards" for o in _options(g)])
def test_every_group_option_composes_and_validates(group, option):
    cfg = _compose(f"{group}={option}", *REQUIRED.get((group, option), []))
    data = check_config(cfg)
    assert data[group] == OmegaConf.to_container(cfg[group], resolve=True)


@pytest.mark.parametrize("exp", _options("experiment"))
def test_every_experiment_preset_composes_and_validates(exp):
    check_config(_compose(f"experiment={exp}", *EXPERIMENT_REQUIRED.get(exp, [])))


@pytest.mark.parametrize("preset", _options("standards"))
def test_every_standards_preset_validates_as_file_and_as_group(preset):
    import yaml

    check_standard(yaml.safe_load((CONF / "standards" / f"{preset}.yaml").read_text()), preset)
    check_config(_compose(f"+standards={preset}", f"policy.required_standards=[{preset}]"))


@pytest.mark.parametrize("option", _options("policy"))
def test_every_policy_key_a_policy_reads_is_declared(option):
    """Each conf/policy file declares every key its policy reads (harness/policy/*.py): the table for the policy
    holds exactly the file's keys, so `--cfg job` shows them all and nothing read is left undeclared."""
    from harness.config_schema import POLICY_COMMON, POLICY_KEYS

    declared = set(OmegaConf.to_container(_compose(f"policy={option}").policy))
    assert declared == set(POLICY_COMMON) | set(POLICY_KEYS[option])


def test_cfg_job_and_help_show_every_report_option(tmp_path):
    env = _env(tmp_path)
    for flag in ("--cfg", "--help"):
        args = [sys.executable, "-m", "harness", "report.gallery_k=0"] + (["--cfg", "job"] if flag == "--cfg" else ["--help"])
        r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        out = r.stdout
        assert "gallery_k: 0" in out and "gallery_blur: 0.0" in out and "enabled: true" in out, out[-3000:]
        if flag == "--help":
            assert "report: default" in out


def test_report_options_are_set_without_plus():
    cfg = _compose("report.gallery_k=0", "report.gallery_blur=3", "report.enabled=false")
    assert OmegaConf.to_container(cfg.report) == {"enabled": False, "gallery_k": 0, "gallery_blur": 3}
    check_config(cfg)


# --------------------------------------------------------------------------------------- in-process refusals


@pytest.mark.parametrize("overrides,match", [
    (["+dataset.lisst=x"], r"unknown config key 'dataset\.lisst' \(did you mean 'list'\?\); valid keys for dataset "
                           r"nuaa: allow_outside_root, list, name, on_problem, root$"),
    (["+detector.min_face=20"], r"'detector\.min_face'.*valid keys for detector mtcnn: factor, max_side, min_face_fraction, min_face_size"),
    (["+detector.batch_size=8"], r"detector's batch_size is runtime\.detect_batch_size"),
    (["+embedder.threads=2"], r"'embedder\.threads'; valid keys for embedder dlib_resnet: name$"),
    (["pad=minifasnet_v2", "+pad.box_maping=none"], r"'pad\.box_maping'.*valid keys for pad minifasnet_v2"),
    (["+protocol.enrol.kk=1"], r"'protocol\.enrol\.kk'"),
    (["policy=eer", "+policy.target_fmr=0.01"], r"'policy\.target_fmr'; valid keys for policy eer"),
    (["+report.galery_k=0"], r"'report\.galery_k' \(did you mean 'gallery_k'\?\)"),
    (["+foo=1"], r"unknown config key 'foo'; valid keys for the top level"),
    (["runtime.threads=0"], r"^runtime\.threads must be an integer >= 1, got 0$"),
    (["runtime.chunk_size=0"], r"^runtime\.chunk_size must be an integer >= 1"),
    (["runtime.batch_size=0"], r"^runtime\.batch_size must be an integer >= 1"),
    (["runtime.detect_batch_size=-1"], r"^runtime\.detect_batch_size must be an integer >= 1"),
    (["runtime.workers=-1"], r"^runtime\.workers must be an integer >= 0"),
    (["runtime.engine=fast"], r"^runtime\.engine must be one of batched, simple"),
    (["runtime.device=gpu"], r"^runtime\.device must be a torch device"),
    (["runtime.cache=no"], r"^runtime\.cache must be true or false"),
    (["runtime.threads=1.5"], r"^runtime\.threads must be an integer"),
    (["policy.target_fmr=abc"], r"^policy\.target_fmr must be a number in \(0, 1\), got 'abc'$"),
    (["policy.target_apcer=0"], r"^policy\.target_apcer must be a number in \(0, 1\)"),
    (["policy.confidence=1"], r"^policy\.confidence must be a number in \(0, 1\)"),
    (["policy.min_subjects=0"], r"^policy\.min_subjects must be an integer >= 1"),
    (["policy.apcer_rule=bound"], r"^policy\.apcer_rule must be one of upper_bound, point"),
    (["policy.fmr_rule=pointt"], r"^policy\.fmr_rule must be one of upper_bound, point"),
    (["policy.select_on=test"], r"^policy\.select_on must be one of dev, eval"),
    (["policy.name=fancy"], r"^policy\.name must be one of bands, eer, joint, min_cost, target_rates"),
    (["policy.standards=[nist]"], r"unknown standards preset 'nist'"),
    (["policy.required_standards=[ibeta]"], r"policy\.required_standards: unknown standards preset 'ibeta'"),
    (["policy.standards=none", "policy.required_standards=[nist_sp800_63a_4]"], r"could never be deployable"),
    (["policy.register_not_deployable=maybe"], r"^policy\.register_not_deployable must be true or false"),
    (["policy=joint", "policy.rule=strict"], r"^policy\.rule must be one of upper_bound, point"),
    (["policy=joint", "policy.target_iapar=1.5"], r"^policy\.target_iapar must be a number in \(0, 1\)"),
    (["policy=min_cost", "policy.review_budget=2"], r"^policy\.review_budget must be a number in \[0, 1\]"),
    (["policy=min_cost", "policy.attack_prevalence=0.6", "policy.impostor_prevalence=0.5"], r"must be < 1"),
    (["policy=min_cost", "policy.loss_per_accepted_fraud=-1"], r"loss_per_accepted_fraud must be a number >= 0"),
    (["policy=bands", "policy.review_budget=1"], r"^policy\.review_budget must be a number in \[0, 1\)"),
    (["policy=bands", "policy.max_grid=1"], r"^policy\.max_grid must be an integer >= 2 or null"),
    (["protocol.dev_fraction=0"], r"^protocol\.dev_fraction must be a number in \(0, 1\), got 0$"),
    (["protocol.dev_fraction=1"], r"^protocol\.dev_fraction must be a number in \(0, 1\)"),
    (["protocol.trials=all"], r"^protocol\.trials must be one of templates, pairs"),
    (["protocol.partition=random"], r"^protocol\.partition must be one of subjects, split"),
    (["protocol=first_k", "protocol.enrol.k=0"], r"^protocol\.enrol\.k must be an integer >= 1"),
    (["protocol.enrol.mode=first_k"], r"protocol\.enrol\.k is required with protocol\.enrol\.mode=first_k"),
    (["protocol.max_impostor_pairs=0"], r"^protocol\.max_impostor_pairs must be an integer >= 1 or null"),
    (["dataset=csv"], r"^dataset\.csv is required for dataset csv and not set .*dataset\.csv=/"),
    (["dataset=folder"], r"^dataset\.root is required for dataset folder"),
    (["dataset=folder", "dataset.root=/x", "dataset.dev_fraction=0"], r"^dataset\.dev_fraction must be a number in \(0, 1\)"),
    (["dataset.on_problem=ignore"], r"^dataset\.on_problem must be one of error, warn"),
    (["dataset.allow_outside_root=perhaps"], r"dataset\.allow_outside_root must be true or false"),
    (["dataset.name=nuaaa"], r"^dataset\.name must be one of .* \(did you mean 'nuaa'\?\)"),
    (["dataset=oulu_npu", "dataset.frames.mode=some"], r"dataset\.frames.*mode must be one of 'uniform', 'every', 'first', 'seconds', 'all'"),
    (["dataset=siw", "dataset.fold=0"], r"^dataset\.fold must be an integer >= 1 or null"),
    (["detector.min_face_size=0"], r"^detector\.min_face_size must be an integer >= 1"),
    (["detector.thresholds=[0.6,0.7]"], r"^detector\.thresholds must be a list of 3 numbers"),
    (["detector.factor=1.2"], r"^detector\.factor must be a number in \(0, 1\)"),
    (["detector.pad_fraction=-0.5"], r"^detector\.pad_fraction must be a number >= 0"),
    (["embedder.name=arcface"], r"^embedder\.name must be one of "),
    (["pad=faceplugin_liveness", "pad.channels=RBG"], r"^pad\.channels must be one of BGR, RGB"),
    (["embedder=faceplugin_feature", "embedder.threads=0"], r"^embedder\.threads must be an integer >= 1 or null"),
    (["pad.box_mapping=retina"], r"^pad\.box_mapping must be one of mtcnn_to_retinaface, none"),
    (["tracking.enabled=true", "tracking.experiment=null"], r"tracking\.experiment must be set when"),
    (["report.gallery_k=-1"], r"^report\.gallery_k must be an integer >= 0"),
    (["report.gallery_blur=-3"], r"^report\.gallery_blur must be a number >= 0"),
    (["report.enabled=nope"], r"^report\.enabled must be true or false"),
    (["seed=abc"], r"^seed must be an integer"),
    (["+standards=nist_sp800_63a_4", "standards.criteria.0.metric=iapr"], r"standards\.criteria\[0\]\.metric must be one of"),
    (["+standards=nist_sp800_63a_4", "+standards.criteria.0.limt=0.1"], r"'standards\.criteria\[0\]\.limt'"),
])
def test_bad_config_is_one_config_error(overrides, match):
    cfg = _compose(*overrides)
    with pytest.raises(ConfigError, match=match) as e:
        check_config(cfg)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI prints user errors (ValueError) in one line, exit 2


def test_unknown_plain_override_is_refused_before_hydra():
    with pytest.raises(ConfigError, match=r"'dataset\.lisst' \(did you mean 'list'\?\); valid keys for dataset nuaa"):
        check_overrides(["dataset.lisst=x"], str(CONF))
    with pytest.raises(ConfigError, match=r"'detector\.min_face'.*valid keys for detector mtcnn"):
        check_overrides(["--cfg", "job", "experiment=faceapi_bbt", "detector.min_face=3"], str(CONF))
    with pytest.raises(ConfigError, match=r"'dataset\.pairs'.*valid keys for dataset csv"):
        check_overrides(["experiment=faceapi_bbt", "dataset.pairs=x"], str(CONF))
    check_overrides(["-m", "dataset=nuaa,lfw", "dataset.pairs=x"], str(CONF))  # swept group: left to Hydra + schema
    check_overrides(["experiment=smoke", "dataset.list=labels.csv", "report.gallery_k=0", "+x=1"], str(CONF))


def test_policy_dict_alone_is_checked():
    from harness.config_schema import check_policy

    check_policy({"name": "min_cost", "review": True, "review_budget": 0.05})
    with pytest.raises(ConfigError, match=r"'policy\.reveiw' \(did you mean 'review'\?\); valid keys for policy min_cost"):
        check_policy({"name": "min_cost", "reveiw": True})


def test_thresholds_missing_only_allowed_without_attacks():
    bona = pd.DataFrame({"status": ["scored"] * 2, "label": ["bona_fide"] * 2})
    with_attacks = pd.concat([bona, pd.DataFrame({"status": ["scored"], "label": ["attack"]})])
    op = {"name": "target_rates", "t_match": 0.5, "t_pad": None, "selected_on": "dev",
          "notes": ["pad: the dev partition lacks bona fide or attack presentations; no PAD threshold chosen"]}
    check_thresholds(op, bona)  # verification-only data: no PAD threshold to choose
    with pytest.raises(RunRequirementError, match=r"^policy target_rates chose no t_pad on dev: pad: the dev"):
        check_thresholds(op, with_attacks)
    with pytest.raises(RunRequirementError, match=r"chose no t_match and no t_pad"):
        check_thresholds(op | {"t_match": None}, with_attacks)


# --------------------------------------------------------------------------------- the CLI, as a user runs it


def _env(tmp: Path) -> dict:
    return dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
                HARNESS_CACHE=str(tmp / "wcache"))


def _cli(tmp: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *overrides], cwd=ROOT, env=_env(tmp), capture_output=True,
                          text=True, timeout=timeout)


def _files(tmp: Path) -> set[Path]:
    d = tmp / "results"
    return {p.relative_to(d) for p in d.rglob("*") if p.is_file()} if d.exists() else set()


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("overrides,needles", [
    (["+dataset.lisst=x"], ["'dataset.lisst'", "valid keys for dataset nuaa: allow_outside_root, list, name"]),
    (["dataset.lisst=x"], ["'dataset.lisst'", "valid keys for dataset nuaa: allow_outside_root, list, name"]),
    (["+detector.min_face=20"], ["'detector.min_face'", "valid keys for detector mtcnn: factor, max_side, min_face_fraction, min_face_size"]),
    (["detector.min_face=20"], ["'detector.min_face'", "valid keys for detector mtcnn: factor, max_side, min_face_fraction, min_face_size"]),
    (["runtime.threads=0"], ["runtime.threads must be an integer >= 1, got 0"]),
    (["runtime.chunk_size=0"], ["runtime.chunk_size must be an integer >= 1, got 0"]),
    (["policy.target_fmr=abc"], ["policy.target_fmr must be a number in (0, 1), got 'abc'"]),
    (["dataset=csv"], ["dataset.csv is required", "dataset.csv="]),
    (["protocol.dev_fraction=0"], ["protocol.dev_fraction must be a number in (0, 1), got 0"]),
])
def test_cli_refuses_bad_config_in_one_line_before_scoring(tmp_path, overrides, needles):
    before = _files(tmp_path)
    r = _cli(tmp_path, "experiment=smoke", "tracking=none", "runtime.progress=false", *overrides, timeout=180)
    _one_line_error(r, *needles)
    new = _files(tmp_path) - before
    # nothing was loaded or scored: at most Hydra's record of the composed config and its (empty) log
    assert all(p.parts[-2] == ".hydra" or p.suffix == ".log" for p in new), sorted(map(str, new))
    assert "manifest:" not in r.stdout + r.stderr and "scored" not in r.stdout + r.stderr


def test_cli_sweep_refuses_a_bad_job_in_one_line(tmp_path):
    r = _cli(tmp_path, "-m", "experiment=smoke", "tracking=none", "runtime.progress=false", "runtime.threads=0,1",
             timeout=180)
    _one_line_error(r, "runtime.threads must be an integer >= 1, got 0")
    assert not any(p.name in RESULT_FILES for p in _files(tmp_path))


# ------------------------------------------------------------ after scoring: the protocol left nothing to choose on


@pytest.fixture(scope="module")
def scored_tmp(tmp_path_factory, shared):
    """One results folder for these runs: the 32 smoke images are scored once, then read from the score cache."""
    return tmp_path_factory.mktemp("strict")


@pytest.mark.shared
@pytest.mark.parametrize("overrides,needles", [
    (["protocol=nuaa", "protocol.enrol.enrol_in=[nowhere]"], ["the protocol enrolled no subject", "no trials"]),
    (["protocol.enrol.k=100"], ["no scored bona fide probe in the dev partition", "protocol.enrol"]),
    (["protocol.dev_fraction=0.1"], ["the dev partition has no subjects", "protocol.dev_fraction=0.1 of 4 subjects"]),
    (["protocol.partition=split"], ["the dev partition has no subjects", "protocol.dev_splits=['dev']"]),
])
def test_nothing_to_choose_on_stops_in_one_line(scored_tmp, overrides, needles):
    r = _cli(scored_tmp, "experiment=smoke", "tracking=none", "runtime.progress=false", *overrides)
    _one_line_error(r, *needles)
    runs = sorted((scored_tmp / "results" / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)
    assert not (runs[-1] / "summary.json").exists() and not (runs[-1] / "operating_point.json").exists()


@pytest.mark.shared
def test_report_option_without_plus_and_verification_only_preset_still_run(scored_tmp):
    r = _cli(scored_tmp, "experiment=smoke", "tracking=none", "runtime.progress=false", "report.enabled=false")
    assert r.returncode == 0, r.stderr[-3000:]
    run = max((scored_tmp / "results" / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)
    assert (run / "summary.json").is_file() and not (run / "report.html").exists()
    # faceapi_bbt has no attacks: no PAD threshold to choose, and that is not an error
    r = _cli(scored_tmp, "experiment=faceapi_bbt", "tracking=none", "runtime.progress=false", "report.gallery_k=0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "t_pad=None" in r.stdout and "t_match=None" not in r.stdout


def test_a_required_key_declared_as_missing_can_be_set_on_the_command_line():
    """README's own example: `dataset=csv dataset.csv=/data/kyc/manifest.csv` (dataset.csv is ??? until set)."""
    from harness.config_schema import check_overrides
    from harness.paths import REPO_ROOT

    check_overrides(["dataset=csv", "dataset.csv=/data/kyc/manifest.csv"], str(REPO_ROOT / "conf"))  # no error


def test_devices_need_the_ray_engine_and_ray_keys_are_checked():
    with pytest.raises(ConfigError, match=r"runtime.devices=\[0, 1\] runs one Ray actor per GPU: use runtime=ray"):
        check_config(_compose("runtime.devices=[0,1]"))
    check_config(_compose("runtime=ray", "runtime.devices=[0,1]", "runtime.device=cuda"))
    with pytest.raises(ConfigError, match="unknown config key 'runtime.ray.actorz'"):
        check_config(_compose("runtime=ray", "+runtime.ray.actorz=2"))
