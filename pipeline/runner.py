"""`pipeline run`: read, run the stages pass by pass with checkpoints and accounting, write, report.

    source -> pass 1 (extract, language, heuristics) -> checkpoint -> pass 2 (dedup) -> checkpoint -> ... -> shards + rejects
                           |                                              |
                   stats per stage                                  stats per stage  -> stats.json, report.html

Consecutive CPU map stages share one Ray pass (`pipeline.passes`); every other stage is a pass
of its own. Each pass's output (kept rows, and dropped rows with the stage and reason) is
checkpointed as Parquet; the next pass reads only the kept rows. Statistics come from the
checkpoints, stage by stage, so a resumed run reports the same numbers as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
import time
import uuid
from typing import Any

from ray.data.expressions import col

from pipeline import __version__, capacity, checkpoint, execute, manifest, node_paths, output_dir, passes, preflight, report, run_lock, sinks, stats
from pipeline.config import ValidatedRun
from pipeline.errors import InvariantViolation, RunFailed, UserError
from pipeline.normalize import READ_STAGE
from pipeline.progress import Progress, drop_reasons
from pipeline.readers import fingerprint_inputs, read_inputs
from pipeline.records import DROP_REASON, DROP_STAGE
from pipeline.sinks import RoutingSink, WrittenFile
from pipeline.stage import Stage
from pipeline.storage import Location
from pipeline.yaml_source import redact


def run(run_config: ValidatedRun, progress: Progress | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run a validated config and return its statistics. A run that leaves no row raises RunFailed
    once its outputs (rejects, report) are written, so the user can see why."""
    from pipeline.ray_session import ray_session

    progress = progress or Progress(enabled=False)
    started = time.time()
    cfg, out = run_config.config, run_config.output_dir
    env = run_config.worker_env()  # before anything looks at a path: where s3:// lives
    plan = passes.plan(run_config.stages, cfg.fuse)
    try:
        fps = _fingerprints(run_config, plan)
    except UserError:  # an input that is not there: the checks below name it, with every other problem
        fps = None
    result = _complete(out, fps[-1]) if fps else None
    complete = result is not None
    if complete:  # the same inputs and config made this output: nothing to do, no Ray to start
        result["stages"] = [{**record, "resumed": True} for record in result["stages"]]
        for record in result["stages"]:
            progress.stage_done(stats.StageRecord.from_json(record))
    else:
        preflight.check(run_config)  # before Ray starts: a missing file is reported in a second, with all the others
        fps = fps or _fingerprints(run_config, plan)
        output_dir.refuse_foreign(out, cfg.output.formats, overwrite)
        with run_lock.held(out, f"pipeline run {run_config.source}"):
            logs = output_dir.claim(out, cfg.output.formats, [o for s in run_config.stages for o in s.outputs()])
            with output_dir.local_logs(logs) as log_dir, ray_session(cfg.ray, progress, log_dir, env):
                result = _run(run_config, plan, fps, progress, started)
    _check_useful(result, out)
    progress.finished(result, out, already_complete=complete)
    return result


def _fingerprints(run_config: ValidatedRun, plan: list[passes.Pass]) -> list[str]:
    """The input's fingerprint, each pass's (chained through the configs of the stages before it), and
    the output's, which adds how it is written: equal fingerprints mean equal results."""
    cfg = run_config.config
    fp = checkpoint.fingerprint("input", [i.model_dump(mode="json") for i in cfg.input],
                                [fingerprint_inputs(i, run_config.output_dir) for i in cfg.input])
    fps = [fp]
    for p in plan:
        for stage in p.stages:
            options, llms = stage.config.model_dump(mode="json"), _llms_used(stage)
            fp = checkpoint.fingerprint(fp, stage.name, options, llms, checkpoint.local_files_named([options, llms]), cfg.seed)
        fps.append(fp)
    fps.append(checkpoint.fingerprint(fp, "output", cfg.output.model_dump(mode="json"), cfg.tokenizer))
    return fps


def _complete(out: Location, fingerprint: str) -> dict | None:
    """The statistics of a finished output with this fingerprint whose files are all there, or None.
    Its manifest, written last, is what says an output is finished; one listing per shard folder
    finds its files (a question per file would be a request per shard in object storage)."""
    try:
        manifest = json.loads((out / output_dir.MANIFEST).read_text())
        if manifest.get("fingerprint") != fingerprint:
            return None
        result = json.loads((out / "stats.json").read_text())
        listed = {f["path"] for f in manifest.get("files", [])}
        present = {f.relative_to(out) for folder in {p.split("/")[0] for p in listed} for f in (out / folder).files()}
    except (OSError, ValueError):
        return None
    return result if listed <= present else None


def _run(run_config: ValidatedRun, plan: list[passes.Pass], fps: list[str], progress: Progress,
         started: float) -> dict[str, Any]:
    t_ray = time.time() - started
    cfg = run_config.config
    ckpts = checkpoint.Checkpoints(run_config.output_dir)
    ckpts.clean_stale({p.id for p in plan})
    finished = {p.id: ckpts.done(p.id, fp) if cfg.output.checkpoint else None for p, fp in zip(plan, fps[1:])}
    node_paths.check_run(run_config)  # a cluster's nodes reach the local paths and servers the work needs
    capacity.check([p for p in plan if not finished[p.id]])  # what the passes still to run ask of the cluster
    current = read_inputs(cfg.input, run_config.output_dir, progress.note)  # what flows into the next stage: kept rows (plus read quarantines at first)
    records: list[stats.StageRecord] = []  # the reader's, then every stage's
    outputs = []  # every pass's output: kept and dropped rows
    rows_in = tokens_in = None
    t_first_stage = None
    n_stages, stages_done = len(run_config.stages), 0
    for k, (p, fp) in enumerate(zip(plan, fps[1:])):
        first_pass = stages_done == 0
        progress.stage_start(stages_done + 1, n_stages, p.stage_ids)
        t_first_stage = t_first_stage if t_first_stage is not None else time.time() - started
        done = finished[p.id]
        if done:
            ran = stats.PassRecord.from_json(done["stats"])
            output = passes.without_measures(ckpts.read(p.id), p)
        else:
            with progress.working(", ".join(p.stage_ids), lambda: ckpts.rows_written(p.id)):
                ran, output = run_pass_surviving_node_loss(p, current, cfg, ckpts, rows_in, tokens_in, first_pass,
                                                           progress)
            if cfg.output.checkpoint:
                ckpts.mark(p.id, fp, ran.to_json())
        if first_pass:
            records.append(stats.read_record(ran.stages[0], ran.read_drops))
            progress.stage_done(records[-1])
        for record in ran.stages:
            records.append(record)
            progress.stage_done(record)
        stages_done += len(ran.stages)
        rows_in, tokens_in = records[-1].kept, records[-1].tokens_kept
        outputs.append(output)
        current = execute.kept(output)
        if rows_in == 0 and k + 1 < len(plan):  # what is left would run on nothing (and start its servers)
            progress.skipped([sid for q in plan[k + 1:] for sid in q.stage_ids], "no rows left")
            break
    progress.writing(run_config.output_dir)
    if not outputs:  # no stages: the run converts the input, and the write pass counts it
        final = current.map_batches(stats.measure, fn_args=(cfg.tokenizer,), batch_format="pyarrow")
        with progress.working("writing"):
            written, summary, dropped = _write_outputs(run_config, final, READ_STAGE)
        kept, tokens = summary.kept()
        read = stats.stage_record(summary, "read", kept + sum(summary.drops_by(READ_STAGE).values()), 0, False,
                                  time.time() - started, {})
        records.append(dataclasses.replace(read, tokens_in=None))
        progress.stage_done(records[-1])
    else:
        with progress.working("writing"):
            written, _, dropped = _write_outputs(run_config, _final_rows(run_config, outputs), records[-1].id)
    for record in records:  # examples of the rows each stage dropped, per reason (pipeline.examples)
        record.examples = dropped.get(record.id, {})
    return _finish(run_config, records, written, started, t_ray if t_first_stage is None else t_first_stage, fps[-1])


def _check_useful(result: dict, out: Location) -> None:
    """A run that leaves no row has failed, whatever the reason: say where the rows went."""
    if result["rows_out"]:
        return
    read = result["stages"][0]
    if not read["rows_in"]:
        raise RunFailed("the input holds no records")
    if not read["kept"]:
        reasons = read["dropped_by_reason"]
        missing = sorted({r.removeprefix("missing_field:") for r in reasons if r.startswith("missing_field:")})
        not_text = sorted({r.removeprefix("not_a_string:") for r in reasons if r.startswith("not_a_string:")})
        if len(missing) == len(reasons):
            hint = f"if the records call it otherwise, map it: input: {{fields: {{{missing[0]}: THEIR_FIELD}}}}."
        elif len(not_text) == len(reasons):
            hint = (f"their {not_text[0]} is not a string (each reject's meta has its type and value): "
                    "map a field that holds the text, or convert the records.")
        else:
            hint = "is the input's format right?"
        raise RunFailed(f"nothing in the input could be read: all {read['rows_in']:,} records were quarantined "
                        f"({drop_reasons(reasons)}); {hint} They are in {out}/rejects/{READ_STAGE}")
    last = next((s for s in result["stages"] if s["kept"] == 0 and s["rows_in"]), result["stages"][-1])
    raise RunFailed(f"no rows left: {last['id']} dropped the last {last['rows_in']:,} "
                    f"({drop_reasons(last['dropped_by_reason'])}); see {out}/report.html and {out}/rejects")


NODE_LOSS_RETRIES = 3  # a node lost in more passes' attempts in a row is a failing cluster, not bad luck


def run_pass_surviving_node_loss(p: passes.Pass, current, cfg, ckpts: checkpoint.Checkpoints, rows_in, tokens_in,
                                 first_pass: bool, progress: Progress) -> tuple[stats.PassRecord, Any]:
    """`_run_pass`, redone from its input when a node that was alive at its start is lost during it.

    What a lost node held may be gone for good: the batch its actors ran (they are not restarted,
    `execute.actor_pool`) and blocks that actors made, which Ray cannot rebuild from lineage. The pass's
    input can always be read again: the previous pass's checkpoint, in storage every node shares, or
    the run's input. Each attempt writes a checkpoint attempt of its own and only a finished one is
    marked, so the failed attempt's files are never read.
    """
    from pipeline.ray_session import live_nodes

    redone = 0
    while True:
        nodes = live_nodes()
        try:
            return _run_pass(p, current, cfg, ckpts, rows_in, tokens_in, first_pass)
        except Exception as error:
            lost = nodes - live_nodes()
            if not lost:
                raise
            if redone == NODE_LOSS_RETRIES:
                last = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise RunFailed(f"{p.id}: a node was lost during each of its {redone + 1} attempts; "
                                f"the last error: {last}") from error
            redone += 1
            progress.note(f"{p.id}: lost {len(lost)} node(s) ({', '.join(sorted(n[:8] for n in lost))}); "
                          f"redoing the pass from its input ({redone}/{NODE_LOSS_RETRIES})")


def _run_pass(p: passes.Pass, current, cfg, ckpts: checkpoint.Checkpoints, rows_in, tokens_in,
              first_pass: bool) -> tuple[stats.PassRecord, Any]:
    """Run one pass and account for each of its stages: its record, and its output without measure columns."""
    t0 = time.time()
    for stage in p.stages:
        stage.prepare()
    if rows_in is None and p.stages[0].produces_rows:
        rows_in, tokens_in = _measure_input(current, p.stages[0])
    if cfg.output.checkpoint:
        source = ckpts.write(p.id, passes.run_pass(p, current))
        output = checkpoint.read_attempt(source)
    else:
        output = source = passes.run_pass(p, current).materialize()
    if p.fused:
        summaries, seconds = stats.pass_summaries(stats.scan(source, [DROP_STAGE, DROP_REASON, *p.measure_columns()]), p.stage_ids)
    else:
        summaries, seconds = [stats.summarize(stats.scan(source, stats.COLUMNS), p.id)], [1.0]
    output = passes.without_measures(output, p)
    wall = time.time() - t0
    records = []
    for j, (stage, summary) in enumerate(zip(p.stages, summaries)):
        if rows_in is None:
            rows_in, tokens_in = summary.input_of_first_stage()
        share = seconds[j] / sum(seconds) if sum(seconds) > 0 else 1 / len(seconds)
        record = stats.stage_record(summary, stage.name, rows_in, tokens_in, stage.produces_rows, wall * share,
                                    stage.summarize(passes.as_left_by(output, p, j)))
        record.pass_id = p.id if p.fused else None
        problem = stats.check_invariant(record, stage.produces_rows)
        if problem:
            raise InvariantViolation(problem)
        records.append(record)
        rows_in, tokens_in = record.kept, record.tokens_kept
    return stats.PassRecord(records, summaries[0].drops_by(READ_STAGE) if first_pass else {}), output


def _llms_used(stage: Stage) -> dict:
    """Configs of the LLMs a stage names, so that changing a model re-runs the stages that use it."""
    return {n: stage.ctx.llms[n] for n in sorted(stage.llm_names())}


def _measure_input(dataset, stage: Stage) -> tuple[int, int]:
    """Rows and tokens entering a first stage that creates rows (its output cannot tell them apart)."""
    measured = dataset.map_batches(stats.measure, fn_args=(stage.ctx.tokenizer,), batch_format="pyarrow")
    return stats.summarize(stats.scan(measured, stats.COLUMNS), stage.ctx.stage_id).kept()


def _final_rows(run_config: ValidatedRun, outputs: list):
    """The last stage's output plus, when rejects are kept, the rows every earlier stage dropped."""
    last = outputs[-1]
    if not run_config.config.output.rejects or len(outputs) == 1:
        return last
    return last.union(*(o.filter(expr=col(DROP_REASON).is_not_null()) for o in outputs[:-1]))


def _write_outputs(run_config: ValidatedRun, rows, stage_id: str
                   ) -> tuple[dict[str, list[tuple[str, WrittenFile]]], stats.Summary, dict]:
    """Shards and rejects in one pass (see `sinks.RoutingSink`) under a temporary folder, then moved
    into place under their final names; the manifest, written after everything else, completes it."""
    cfg = run_config.config.output
    out = run_config.output_dir
    tmp = out / output_dir.WORK / f"{output_dir.WRITES}{uuid.uuid4().hex[:8]}"
    dirs = {fmt: tmp / name for fmt, name in output_dir.data_dirs(cfg.formats).items()}
    sink = RoutingSink(dirs, tmp / "rejects" if cfg.rejects else None, stage_id,
                       min_rows=None if cfg.shard_bytes else cfg.shard_rows, min_bytes=cfg.shard_bytes)
    rows.write_datasink(sink)
    written: dict[str, list[tuple[str, WrittenFile]]] = {fmt: [] for fmt in dirs}
    kinds = {directory: fmt for fmt, directory in dirs.items()}
    moves = []
    for folder, files in sink.files.items():
        for f, name in sinks.shard_names(files):
            path = f"{folder.relative_to(tmp)}/{name}"
            written.setdefault(kinds.get(folder, "rejects"), []).append((path, f))
            moves.append((f.location, path))
    output_dir.swap_in(out, cfg.formats, moves)
    tmp.remove()  # the empty shards that were not moved
    return written, sink.summary, sink.examples


def _finish(run_config: ValidatedRun, records: list[stats.StageRecord], written: dict, started: float, t_first: float,
            fingerprint: str) -> dict:
    out = run_config.output_dir
    final = records[-1]
    result = {
        "name": run_config.config.name,
        "config": run_config.source,
        "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "wall_s": round(time.time() - started, 3),
        "time_to_first_stage_s": round(t_first, 3),
        "tokenizer": run_config.config.tokenizer or "whitespace",
        "rows_out": final.kept,
        "tokens_out": final.tokens_kept,
        "stages": [r.to_json() for r in records],
    }
    (out / "stats.json").write_text(redact(json.dumps(result, indent=1, default=str)))
    report.write(out / "report.html", result)
    files = [f for group in written.values() for f in group]
    data_schema = manifest.schema_of(written)
    manifest.write_dataset_card(out, run_config.config.name, run_config.config.output.formats, result, data_schema)
    manifest.write_manifest(out, files, {
        "name": run_config.config.name,
        "created": result["started"],
        "pipeline_version": __version__,
        "fingerprint": fingerprint,
        "python": platform.python_version(),
        "config": json.loads(redact(json.dumps(run_config.raw, default=str))),
        "schema": data_schema,
    })
    output_dir.swapped(out)
    return result
