"""Each generation algorithm owns its options (generators/), and the stage that runs it embeds them:
every option of the algorithm is an option of the stage, checked as the config loads, and reaches the
algorithm with its value; the run's seed is added by the stage, never a stage option."""

from __future__ import annotations

import pytest

from generators.evol_instruct import EvolConfig, EvolOptions
from generators.grounded import GroundedConfig, GroundedOptions
from generators.magpie import MagpieConfig, MagpieOptions
from generators.preferences import PreferenceConfig
from generators.respond import RespondConfig, RespondOptions
from generators.self_instruct import SelfInstructConfig, SelfInstructOptions
from pipeline.config import build_stage, load_run
from pipeline.errors import UserError

TEACHER = {"teacher": {"backend": "transformers", "model": "m"}}

STAGES = {  # stage: (its algorithm's options, the config the algorithm runs with, a value other than the default for each option)
    "respond": (RespondOptions, RespondConfig, {"samples": 3, "temperature": 0.2, "top_p": 0.9, "max_tokens": 77,
                                                "system_prompt": "Be brief.", "turns": 3, "simulator_prompt": "Go on:\n$conversation",
                                                "simulator_temperature": 0.3, "simulator_max_tokens": 99}),
    "magpie": (MagpieOptions, MagpieConfig, {"count": 9, "turns": 2, "system_prompts": [None, "Be kind."], "temperature": 0.8,
                                             "top_p": 0.9, "max_tokens": 60, "response_temperature": 0.2, "response_max_tokens": 70,
                                             "batch_size": 4}),
    "grounded": (GroundedOptions, GroundedConfig, {"min_score": 3.5, "min_words": 20, "max_words": 900, "temperature": 0.1,
                                                   "max_tokens": 64}),
    "evol_instruct": (EvolOptions, EvolConfig, {"rounds": 2, "operations": ["deepen", "breadth"], "temperature": 0.3,
                                                "max_tokens": 300, "response_temperature": 0.4, "response_max_tokens": 400,
                                                "sorry_max_words": 50, "structured": "on"}),
    "self_instruct": (SelfInstructOptions, SelfInstructConfig, {
        "target": 5, "prompt_tasks": 6, "pool_tasks": 1, "requests_per_round": 3, "rouge_threshold": 0.6, "min_words": 3,
        "max_words": 100, "temperature": 0.5, "top_p": 0.4, "max_tokens": 500, "instance_max_tokens": 200,
        "instances_per_task": 2, "classification_only": True, "max_stale_rounds": 3, "structured": "off"}),
    "preferences": (PreferenceConfig, PreferenceConfig, {"mode": "pairwise", "min_margin": 0.25, "judge_max_tokens": 64,
                                                                    "structured": "on"}),
}


@pytest.mark.parametrize("name, options, config, values", [(n, *v) for n, v in STAGES.items()], ids=list(STAGES))
def test_a_generation_stage_takes_every_option_of_its_algorithm_and_hands_it_over(name, options, config, values):
    assert set(values) == set(options.model_fields)  # every option of the algorithm: a new one must be added here
    assert all(options.model_fields[k].default != v for k, v in values.items())
    stage = build_stage(name, values, index=1, output_dir="/nonexistent", seed=7, llms=TEACHER)
    assert isinstance(stage.config, options)
    handed = stage.config if config is options else config.of(stage.config, seed=7)
    assert {k: getattr(handed, k) for k in values} == values
    assert getattr(handed, "seed", 7) == 7


@pytest.mark.parametrize("name", ["respond", "grounded", "evol_instruct", "self_instruct", "magpie"])
def test_the_seed_is_the_runs_not_a_stage_option(tmp_path, name):
    path = tmp_path / "c.yaml"
    path.write_text(f"input: {{format: jsonl, paths: [x]}}\noutput: o\nstages:\n  - {name}: {{seed: 3}}\n")
    with pytest.raises(UserError, match=rf"c.yaml:4: stages\[0\]\.{name}\.seed: unknown key 'seed'"):
        load_run(path)
