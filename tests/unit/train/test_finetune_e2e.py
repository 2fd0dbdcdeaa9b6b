"""`pipeline finetune` end to end on a tiny run directory: SFT then DPO, adapter, merge, card, user errors."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.cli import main
from pipeline.train.data import hh_rlhf_rows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, seed_chats, shared_data, tiny_model_dir):
    """A run directory as `pipeline run` leaves it: shards, manifest with the config, stats, contamination report."""
    run = tmp_path_factory.mktemp("run")
    (run / "data").mkdir()
    (run / "preferences").mkdir()
    rows = [{"id": str(i), "messages": chat, "source": "seed"} for i, chat in enumerate(seed_chats[:24])]
    pq.write_table(pa.Table.from_pylist(rows), run / "data" / "part-00000.parquet")
    prefs = hh_rlhf_rows(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", 12)
    (run / "preferences" / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    finetune = {"model": str(tiny_model_dir), "sft": {"max_steps": 2, "micro_batch_size": 4, "grad_accum": 1,
                                                      "max_seq_len": 128, "learning_rate": 1e-2, "sample_every": 2},
                "dpo": {"max_seq_len": 128, "micro_batch_size": 2, "grad_accum": 1}}
    (run / "manifest.json").write_text(json.dumps({"name": "tiny-run", "created": "2026-11-22T08:00:00", "rows": 24,
                                                   "config": {"finetune": finetune}}))
    (run / "stats.json").write_text(json.dumps({"rows_out": 24, "stages": [{"id": "1-heuristics"}]}))
    (run / "contamination_report.html").write_text("<html>no leaks</html>")
    return run


@pytest.mark.slow
def test_finetune_sft_then_dpo_end_to_end(run_dir, tiny_model_dir, capsys):
    code = main(["finetune", str(run_dir), "--dpo", "--set", "dpo.max_steps=1", "--merge"])
    assert code == 0
    out = run_dir / "finetune"
    logs = {name: [json.loads(line) for line in (out / "logs" / name).read_text().splitlines()]
            for name in ("sft.jsonl", "dpo.jsonl", "sft_samples.jsonl")}
    assert [r["step"] for r in logs["sft.jsonl"]] == [1, 2] and "eval_loss" in logs["sft.jsonl"][-1]
    assert {"reward_accuracy", "margin", "chosen_logps", "rejected_logps"} <= set(logs["dpo.jsonl"][0])
    assert logs["sft_samples.jsonl"] and list((out / "logs" / "tensorboard").iterdir())

    # The adapter is plain peft: it loads onto the base with PeftModel, and merging changes no logit.
    from peft import PeftModel

    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter).eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([tokenizer.apply_chat_template([{"role": "user", "content": "Name a color."}],
                                                      add_generation_prompt=True, return_dict=False)])
    with torch.no_grad():
        adapted, folded, original = (m(input_ids=ids).logits for m in (peft_model, merged, base))
    torch.testing.assert_close(folded, adapted, atol=1e-5, rtol=1e-5)
    assert (adapted - original).abs().max() > 1e-4  # the adapter really changed the model

    card = (adapter / "README.md").read_text()
    assert "tiny-run" in card and "contamination_report.html" in card and "24 rows" in card
    assert "preferences: 12 rows" in card

    # `pipeline inspect` of the fine-tune's folder says where it stands (it said "not a pipeline output").
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"{out}: a fine-tune of {tiny_model_dir}; adapter in {out}/adapter"
    sft, dpo = logs["sft.jsonl"][-1], logs["dpo.jsonl"][-1]
    assert shown[1] == (f"  sft: 2 steps logged, last loss {sft['loss']:.4g}, last eval loss {sft['eval_loss']:.4g} "
                        f"({out}/logs/sft.jsonl)")
    assert shown[2].startswith(f"  dpo: 1 step logged, last loss {dpo['loss']:.4g}")


def test_finetune_user_errors_exit_2_with_one_line(run_dir, tiny_model_dir, tmp_path, capsys):
    assert main(["finetune", str(run_dir), "--set", "sft.learnin_rate=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "learning_rate" in err and len(err.splitlines()) == 1

    broken = tmp_path / "pad_is_eos"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(broken)
    assert main(["finetune", str(run_dir), "--model", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "pad token equals EOS" in capsys.readouterr().err

    assert main(["finetune", str(run_dir), "--method", "qlora", "--out", str(tmp_path / "q")]) == 2
    assert "qlora needs a CUDA GPU" in capsys.readouterr().err

    assert main(["finetune", str(tmp_path / "missing")]) == 2


def test_examples_cut_before_their_answer_are_left_out_and_a_run_of_only_those_is_refused(run_dir, tmp_path, capsys):
    """With a sequence limit shorter than the prompts, SFT used to train 2 steps on a loss of 0 and exit 0."""
    def error(*argv) -> str:
        assert main(["finetune", str(run_dir), "--out", str(tmp_path / "o"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    assert "has an answer token within sft.max_seq_len = 8 tokens: raise it" in error("--max-seq-len", "8")
    assert "has both responses within dpo.max_seq_len = 8 tokens" in error("--dpo", "--skip-sft", "--set",
                                                                              "dpo.max_seq_len=8")


def test_only_the_examples_cut_before_their_answer_are_left_out(tmp_path, tiny_model_dir):
    from pipeline.train.config import FinetuneConfig
    from pipeline.train.run import sft_data

    answer = {"role": "assistant", "content": "Fine."}
    rows = [{"id": str(i), "messages": [{"role": "user", "content": f"Name color {i}. " * (1 + 5 * (i % 2))}, answer]}
            for i in range(40)]  # odd rows: a prompt longer than the limit (about 21 tokens templated, and 60)
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FinetuneConfig(model=str(tiny_model_dir), data=[str(tmp_path / "chats.jsonl")],
                         sft={"max_seq_len": 40, "eval_fraction": 0.1})
    provenance: dict = {}
    data = sft_data(cfg, AutoTokenizer.from_pretrained(tiny_model_dir), [], provenance)
    assert provenance["instructions"]["left_out"] == 20
    assert len(data.train) + len(data.held_out) == 20 and all(e.n_targets for e in data.train + data.held_out)
    assert all(chat[0]["content"].count("Name") == 1 for chat in data.chats)


def test_object_storage_problems_exit_2_with_one_line_before_training(run_dir, tiny_model_dir, s3_bucket, monkeypatch,
                                                                       capsys):
    from pipeline import storage
    from tests.object_store import READ_ONLY_KEY, READ_ONLY_SECRET

    for name in ("manifest.json", "data/part-00000.parquet"):
        storage.locate(run_dir / name).copy_to(storage.locate(f"{s3_bucket}/run/{name}"))

    def error(*argv) -> str:
        assert main(["finetune", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    assert "output directory not found: s3://no-such-bucket-h8/run" in error("s3://no-such-bucket-h8/run")
    assert f"model: not found: {s3_bucket}/models/none" in error(f"{s3_bucket}/run", "--model", f"{s3_bucket}/models/none")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READ_ONLY_KEY)  # may read the run, may not write
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READ_ONLY_SECRET)
    err = error(f"{s3_bucket}/run", "--model", str(tiny_model_dir))
    assert f"cannot write the fine-tune's output to {s3_bucket}/run/finetune" in err and "denied" in err.lower()
    assert not storage.locate(f"{s3_bucket}/run/finetune").exists()
