"""``uni3d compare``: run methods x prompts x seeds (resumably), score every run, write the reports."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro
import yaml

from uni3d.compare.results import error_row, finished, load_row, write_csv
from uni3d.compare.spec import BatchSpec, PromptGroup, RunTask, expand_prompts, load_spec, merge, parse_override, plan
from uni3d.errors import UserError


@dataclass
class CompareConfig:
    """Methods x prompts x seeds, each run scored against ground truth; results.csv, report.md, report.html in OUT. Resumable: finished runs (with evaluation.json) are skipped."""

    spec: Path | None = None
    """A batch spec YAML (e.g. configs/benchmark/full.yaml); --methods, --prompts and --seeds replace its entries."""
    methods: tuple[str, ...] = ()
    """Presets in configs/ (sds, vsd, uni-instruct-fkl, ...) or preset YAML paths. Default: the spec's, else sds vsd uni-instruct-fkl."""
    prompts: tuple[str, ...] = ()
    """Shapes World prompts, or the sets full (36), under (12), shape-only, colour-only."""
    seeds: tuple[int, ...] = ()
    """Seeds of every prompt given by --prompts (default 0)."""
    override: tuple[str, ...] = ()
    """Settings for every run as KEY=VALUE with dotted keys, e.g. train.steps=200 export.resolution=64."""
    teacher: str | None = None
    """Teacher of every run (default: the spec's, else shapes)."""
    scene: Literal["nerf", "gaussians"] | None = None
    """Scene of every run (default: the spec's, else nerf)."""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/compare")
    """Output directory: runs under OUT/runs/METHOD/PROMPT/sSEED, reports beside them."""
    executor: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: one Ray task per run on a cluster."""
    ray_address: str | None = None
    """Address of the Ray cluster (host:port or ray://host:10001) for --executor ray; default: start a local Ray."""
    workers: int = 1
    """Parallel runs in the local pool; 0 runs them one by one in this process. The workers share the cores
    (see --threads)."""
    threads: int | None = None
    """torch threads (and Ray CPUs) per run. Default: the cores divided by --workers (Ray: 1)."""
    overwrite: bool = False
    """Redo every run, finished or not."""
    report_only: bool = False
    """Only rewrite the reports from the runs already finished; run nothing."""
    turntables: int = 6
    """Prompts whose turntable GIFs report.html inlines (GIFs are large)."""
    progress: bool = True
    """Show a progress bar over runs."""


def resolve_spec(cfg: CompareConfig) -> BatchSpec:
    """The spec file (if any) with the flags applied."""
    spec = load_spec(cfg.spec) if cfg.spec is not None else BatchSpec()
    if cfg.methods:
        spec.methods = list(cfg.methods)
    if cfg.prompts:
        spec.groups = [PromptGroup(expand_prompts(list(cfg.prompts)), list(cfg.seeds or (0,)))]
    elif cfg.seeds:
        if not spec.groups:
            raise UserError("--seeds needs --prompts (or a spec with prompts)")
        spec.groups = [dataclasses.replace(g, seeds=list(cfg.seeds)) for g in spec.groups]
    if any(s < 0 for s in cfg.seeds):
        raise UserError("seeds must be non-negative")
    spec.overrides = merge(spec.overrides, parse_override(cfg.override))
    spec.teacher = cfg.teacher or spec.teacher
    spec.scene = cfg.scene or spec.scene
    return spec


def stale(task: RunTask, ignore: tuple[str, ...] = ()) -> str | None:
    """Where a finished run's config.yaml differs from what the batch asks for (outside the sections in
    ``ignore``, and leaving out settings uni3d has retired since), or None."""
    from uni3d.config import RUN_KEYS, GenerateConfig, to_plain, without_retired

    try:
        have = without_retired(yaml.safe_load((task.run_dir / "config.yaml").read_text()))
    except (OSError, yaml.YAMLError):
        return "config.yaml unreadable"
    def settings(config: GenerateConfig) -> dict:  # as config.yaml holds them
        plain = to_plain(config)
        return yaml.safe_load(yaml.safe_dump({k: plain[k] for k in RUN_KEYS if k not in ignore}))

    want = settings(task.config)
    have = _with_defaults(have, settings(GenerateConfig()))
    return _first_difference({k: v for k, v in have.items() if k not in ignore} if isinstance(have, dict) else have, want)


def _retrain(task: RunTask) -> str | None:
    """Why a finished run cannot stand for what the batch asks, or None: settings other than the export differ,
    or the export does and no checkpoint is left to mesh it again from (a run restored from its records)."""
    return stale(task, ignore=("export",)) or (None if (task.run_dir / "checkpoint.pt").is_file() else stale(task))


def _with_defaults(have, default):
    """A run's settings, plus the default of each setting added to uni3d since the run was made (the default keeps
    the behaviour the run had), so only a non-default value asked of such a setting tells the run apart."""
    if not (isinstance(have, dict) and isinstance(default, dict)):
        return have
    return {**default, **{k: _with_defaults(v, default.get(k)) for k, v in have.items()}}


def _first_difference(a, b, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k), b.get(k), f"{where}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{where.rstrip('.')}: {a!r} here, {b!r} asked"


def _threads(cfg: CompareConfig) -> int:
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise UserError(f"--threads must be positive, got {cfg.threads}")
        return cfg.threads
    if cfg.executor == "ray":
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, cfg.workers))


def compare(cfg: CompareConfig) -> list[dict]:
    """Run the batch (skipping finished runs), write results.csv and the reports; returns the rows."""
    from uni3d.compare import executors
    from uni3d.compare.report import write_reports

    if cfg.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {cfg.workers}")
    if cfg.ray_address and cfg.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    threads = _threads(cfg)
    spec = resolve_spec(cfg)
    tasks = plan(spec, cfg.out)
    done = [] if cfg.overwrite else [t for t in tasks if finished(t.run_dir)]
    changed = [(t, d) for t in done if (d := _retrain(t))]
    if changed:
        t, d = changed[0]
        raise UserError(f"{len(changed)} finished run(s) in {cfg.out} were made with other settings (e.g. {t.run_dir}: "
                        f"{d}): use another --out, or --overwrite to redo them all")
    # Runs that differ in their export settings only are meshed again from their checkpoints, not trained again.
    remesh = [] if cfg.report_only else [dataclasses.replace(t, reexport=True) for t in done if stale(t)]
    rows = {t.key: load_row(t) for t in done}
    todo = [] if cfg.report_only else [t for t in tasks if t.key not in rows]
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {cfg.out}: {exc.strerror}") from None
    _write_batch(cfg.out, spec)
    ordered = lambda: [rows.get(t.key) or error_row(t, "not run") for t in tasks]  # noqa: E731
    print(f"compare: {len(tasks)} runs, {len(done)} finished earlier, {len(todo)} to run "
          + (f"and {len(remesh)} to mesh again (export settings changed) " if remesh else "")
          + f"({_where(cfg)}, {threads} thread(s) each)")
    def run(batch: list[RunTask], unit: str, anywhere: bool) -> None:
        """Execute ``batch``, each row into ``rows`` and results.csv as it comes; ``anywhere``: Ray may take it."""
        from tqdm import tqdm

        bar = tqdm(total=len(batch), unit=unit, disable=not cfg.progress)
        by_dir = {str(t.run_dir): t for t in batch}

        def on_done(row: dict) -> None:
            rows[by_dir[row["run_dir"]].key] = row
            write_csv(ordered(), cfg.out / "results.csv")
            bar.set_postfix_str(f"{row['method']} / {row['prompt']} / s{row['seed']}: {row['status']}")
            bar.update()

        try:
            if anywhere and cfg.executor == "ray":
                executors.run_ray(batch, threads, on_done, cfg.ray_address)
            elif cfg.workers == 0:
                executors.run_inline(batch, threads, on_done)
            else:
                executors.run_local(batch, cfg.workers, threads, on_done)
        finally:
            bar.close()

    if remesh:
        run(remesh, "mesh", anywhere=False)  # on this machine, where their checkpoints are
    if todo:
        run(todo, "run", anywhere=True)
    result = ordered()
    write_csv(result, cfg.out / "results.csv")
    write_reports(cfg.out, result, list(dict.fromkeys(t.method for t in tasks)), turntables=cfg.turntables)
    failed = sum(r["status"] != "ok" for r in result)
    print(f"compare: {len(result) - failed} of {len(result)} runs finished" + (f", {failed} failed or not run" if failed else "")
          + f"; wrote {cfg.out / 'results.csv'}, {cfg.out / 'report.md'}, {cfg.out / 'report.html'}")
    return result


def _where(cfg: CompareConfig) -> str:
    if cfg.executor == "ray":
        return f"Ray at {cfg.ray_address or 'a local Ray'}"
    return "in this process" if cfg.workers == 0 else f"local pool of {cfg.workers} worker(s)"


def _write_batch(out: Path, spec: BatchSpec) -> None:
    """OUT/batch.yaml: the resolved spec (reloads with --spec)."""
    data = {"methods": spec.methods, "groups": [dataclasses.asdict(g) for g in spec.groups],
            "overrides": spec.overrides, "teacher": spec.teacher, "scene": spec.scene}
    (out / "batch.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def run_compare(cfg: CompareConfig) -> None:
    """CLI entry: exit code 0 even when some runs failed (they are listed in results.csv)."""
    compare(cfg)
