"""Batch specs: YAML and flags, prompt sets, run keys and the config of every run; bad input."""

from pathlib import Path

import pytest

from uni3d.cli import main
from uni3d.compare.batch import CompareConfig, resolve_spec
from uni3d.compare.spec import BatchSpec, PromptGroup, load_spec, parse_override, plan, run_key
from uni3d.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_yaml_groups_and_prompt_sets(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("methods: [sds, vsd]\ngroups:\n  - {prompts: full, seeds: [0]}\n"
                         "  - {prompts: [a mug, colour-only], seeds: [0, 1]}\noverrides: {train: {steps: 7}}\n")
    spec = load_spec(spec_file)
    assert len(spec.groups[0].prompts) == 36 and spec.groups[1].prompts[:2] == ["a mug", "a red object"]
    tasks = plan(spec, tmp_path / "out")
    assert len(tasks) == 2 * (36 + 7 * 2)
    assert len({t.key for t in tasks}) == len(tasks)


def test_run_dir_and_config_of_a_run(tmp_path):
    spec = BatchSpec(methods=["sds", "uni-instruct-js"], groups=[PromptGroup(["a red mug"], [3])],
                     overrides=parse_override(["train.steps=11", "export.resolution=50"]))
    sds, js = plan(spec, tmp_path)
    assert sds.run_dir == tmp_path / "runs" / "sds" / "a-red-mug" / "s3" and sds.key == run_key("sds", "a red mug", 3)
    assert sds.config.train.seed == 3 and sds.config.train.steps == 11 and sds.config.export.resolution == 50
    assert sds.config.guidance.method == "sds" and sds.config.guidance.cfg_scale == 7.5  # the preset
    assert js.config.guidance.divergence == "js" and js.config.progress is False


def test_flags_replace_the_spec(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("methods: [sds]\nprompts: under\nseeds: [0, 1, 2]\nteacher: shapes\n")
    spec = resolve_spec(CompareConfig(spec=spec_file, seeds=(5,), override=("train.steps=2",)))
    assert spec.methods == ["sds"] and len(spec.groups[0].prompts) == 12 and spec.groups[0].seeds == [5]
    assert spec.overrides == {"train": {"steps": 2}}
    spec = resolve_spec(CompareConfig(spec=spec_file, methods=("vsd",), prompts=("a red cube",)))
    assert spec.methods == ["vsd"] and [(g.prompts, g.seeds) for g in spec.groups] == [(["a red cube"], [0])]


def test_the_benchmark_specs_plan_their_runs(tmp_path):
    full = plan(load_spec(REPO / "configs" / "benchmark" / "full.yaml"), tmp_path)
    assert len(full) == 6 * (36 * 3 + 12 * 8)
    small = plan(load_spec(REPO / "configs" / "benchmark" / "small.yaml"), tmp_path)
    assert len(small) == 4 and small[0].config.train.steps == 30


@pytest.mark.parametrize("spec,needle", [
    (BatchSpec(methods=["dreamfusion"], groups=[PromptGroup(["a red mug"])]), "unknown method 'dreamfusion'"),
    (BatchSpec(methods=["sds"], groups=[]), "no prompts"),
    (BatchSpec(methods=["sds"], groups=[PromptGroup(["a red mug"])], overrides={"train": {"stepz": 3}}), "train.stepz"),
    (BatchSpec(methods=["sds"], groups=[PromptGroup(["a red mug"])], overrides={"train": {"steps": 0}}), "--steps must be positive"),
    (BatchSpec(methods=["sds"], groups=[PromptGroup(["a red mug"])], scene="image"), "cannot be compared"),
    (BatchSpec(methods=["sds", "sds"], groups=[PromptGroup(["a red mug"])]), "methods repeat"),
])
def test_bad_batches(tmp_path, spec, needle):
    with pytest.raises(UserError, match=needle):
        plan(spec, tmp_path)


@pytest.mark.parametrize("text,needle", [
    ("methods: [sds]\nprompts: [a shiny mug]\n", "not a Shapes World caption"),
    ("methods: [sds]\nprompt: [a red mug]\n", "unknown key"),
    ("methods: [sds]\nprompts: full\ngroups: []\n", "not both"),
    ("methods: [sds]\ngroups: [{prompts: full, seeds: [-1]}]\n", "non-negative"),
    ("methods: [sds\n", "not valid YAML"),
])
def test_bad_spec_files(tmp_path, text, needle):
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(UserError, match=needle):
        load_spec(tmp_path / "s.yaml")


@pytest.mark.parametrize("extra,needle", [
    (["--methods", "dreamfusion"], "unknown method"),
    (["--prompts", "a shiny mug"], "not a Shapes World caption"),
    (["--override", "train.steps"], "KEY=VALUE"),
    (["--ray-address", "127.0.0.1:1"], "--executor ray"),
    (["--workers", "-1"], "--workers"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, extra, needle):
    out = tmp_path / "out"
    args = ["compare", "--prompts", "a red mug", "--out", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not out.exists()


def test_compare_help_comes_from_the_docstrings(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "--ray-address" in out and "finished runs" in out.lower()
