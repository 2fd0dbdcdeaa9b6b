"""Option mistakes that used to pass, or to surface only once the run had started, are refused by
`pipeline validate` as the config loads: one line with the file, the line of the mistake, the key path,
and the nearest valid name where there is one; exit code 2. A load error stops before the checks of
what the config names, so the missing input file of these configs is never mentioned."""

from __future__ import annotations

import pytest

from tests.cli import cli

HEAD = "input: {format: jsonl, paths: [missing.jsonl]}\noutput: out\n"
TEACHER = "llms:\n  teacher: {backend: vllm_server, model: m}\n"

CASES = {
    "a view no stage knows": (
        HEAD + "stages:\n  - length: {view: respnse}\n",
        "4: stages[0].length.view: got 'respnse', expected one of 'text', 'instruction', 'response' or 'conversation'; "
        "did you mean 'response'?"),
    "a misspelt view of decontaminate": (
        HEAD + "stages:\n  - decontaminate: {benchmarks: [gsm8k], view: instrucion}\n",
        "4: stages[0].decontaminate.view: got 'instrucion', expected one of 'text', 'instruction', 'response' or "
        "'conversation'; did you mean 'instruction'?"),
    "a benchmark name that is not registered": (
        HEAD + "stages:\n  - decontaminate:\n      benchmarks:\n        - gsm8k\n        - humaneavl\n",
        "7: stages[0].decontaminate.benchmarks[1]: unknown benchmark 'humaneavl'; did you mean 'humaneval'? (known: "),
    "an evolution operation that does not exist": (
        HEAD + "stages:\n  - evol_instruct: {operations: [deepen, bredth]}\n" + TEACHER,
        "4: stages[0].evol_instruct.operations[1]: got 'bredth', expected one of 'add_constraints', 'deepen', "
        "'concretize', 'increase_reasoning', 'complicate_input' or 'breadth'; did you mean 'breadth'?"),
    "no evolution operation at all": (
        HEAD + "stages:\n  - evol_instruct: {operations: []}\n" + TEACHER,
        "4: stages[0].evol_instruct.operations: List should have at least 1 item after validation, not 0"),
    "a prompt without room for seed tasks": (
        HEAD + "stages:\n  - self_instruct:\n      prompt_tasks: 4\n      pool_tasks: 4\n" + TEACHER,
        "6: stages[0].self_instruct.pool_tasks: pool_tasks (4) must be below prompt_tasks (4)"),
    "preference candidates giving one answer": (
        HEAD + "stages:\n  - preferences:\n      candidates: [{llm: teacher}]\n" + TEACHER,
        "5: stages[0].preferences.candidates: candidates must give at least two answers per instruction"),
    "a ray_vllm field under vllm_server": (
        HEAD + "llms:\n  teacher:\n    backend: vllm_server\n    model: m\n    replicas: 2\n",
        "7: llms.teacher.replicas: replicas is only for backend ray_vllm, not vllm_server"),
    "a server url under transformers": (
        HEAD + "llms:\n  small:\n    backend: transformers\n    model: m\n    url: http://gpu-box:8000\n",
        "7: llms.small.url: url is only for backend vllm_server, not transformers"),
    "a misspelt backend": (
        HEAD + "llms:\n  teacher:\n    backend: vllm-server\n    model: m\n",
        "5: llms.teacher.backend: got 'vllm-server', expected one of 'vllm_server', 'ray_vllm', 'transformers'; "
        "did you mean 'vllm_server'?"),
}


@pytest.mark.parametrize("config, expected", CASES.values(), ids=CASES.keys())
def test_an_option_mistake_is_one_line_at_its_line_when_the_config_loads(tmp_path, config, expected):
    path = tmp_path / "c.yaml"
    path.write_text(config)
    proc = cli("validate", str(path), timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: {path}:{expected}"), line
