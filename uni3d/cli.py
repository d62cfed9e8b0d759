"""The ``uni3d`` command line. Each command is a dataclass whose field docstrings are its ``--help``.

    uni3d teacher sample "a red mug" -n 8 --out samples/
    uni3d teacher train
    uni3d world mesh "a red mug" -o mug.glb
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from uni3d.errors import UserError
from uni3d.training import Interrupted


def _arg(*aliases: str):
    return tyro.conf.arg(aliases=aliases)


def _unwrap(text: str) -> str:
    """A docstring's paragraphs, each joined onto one line (blank lines separate paragraphs)."""
    paragraphs = (" ".join(line.strip() for line in block.splitlines() if line.strip()) for block in text.split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def _unwrap_field_docs() -> None:
    """Let ``--help`` re-flow field docstrings to the terminal's width.

    tyro joins a docstring's lines unless a line starts with a non-letter, and the indent of a wrapped
    field docstring is one, so every source line break showed up in ``--help``. Its line joiner is
    swapped for one that joins every line of a paragraph; without that hook (another tyro) help is
    unchanged.
    """
    if getattr(getattr(tyro, "_strings", None), "remove_single_line_breaks", None) is not None:
        tyro._strings.remove_single_line_breaks = _unwrap  # type: ignore[attr-defined]


@dataclass
class TeacherSample:
    """Draw images from a teacher and write the PNGs and a grid."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")]
    """Text prompt, e.g. "a red mug". Empty only with --unconditional."""
    out: Annotated[Path, _arg("-o")] = Path("samples")
    """Output directory (created; existing PNGs of the same names are replaced)."""
    n: Annotated[int, _arg("-n")] = 8
    """Number of images."""
    azimuth: float | None = None
    """Camera azimuth in degrees (0 looks from +z). Default: random training-distribution views."""
    elevation: float | None = None
    """Camera elevation in degrees. Default: random training-distribution views."""
    no_camera: bool = False
    """Give the teacher no camera at all (it was trained with the camera dropped 15% of the time)."""
    cfg: float | None = None
    """Classifier-free guidance scale (default: the teacher's own, 4 for the shapes teacher)."""
    steps: int = 50
    """Sampling steps."""
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    """ddpm: ancestral, with the x0 estimate clipped to the image range (clean white backgrounds on the
    shapes teacher); ddim: deterministic (eta 0)."""
    seed: int = 0
    """Random seed (noise and random views)."""
    teacher: str = "shapes"
    """"shapes" (embedded), a teacher directory, or a Stable Diffusion directory or hub id."""
    unconditional: bool = False
    """Allow the empty prompt (unconditional samples)."""


@dataclass
class WorldMesh:
    """Write the ground-truth mesh of a fully specified Shapes World prompt (world units, y up)."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")]
    """A fully specified caption, e.g. "a red mug"."""
    out: Annotated[Path, _arg("-o")] = Path("mesh.glb")
    """Output file: .glb, .obj or .ply."""
    resolution: int = 160
    """Marching-cubes grid resolution."""


def _seconds(r: dict) -> str:
    """The run's time for a one-line summary: the batch's wall clock where a batch ran it, else the training time."""
    if r.get("wall_seconds") is not None:
        return f"wall {r['wall_seconds']:.0f} s"
    if r.get("train_seconds_this_session") is not None:
        return f"training {r['train_seconds_this_session']:.0f} s"
    return "time unknown"


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"--{name} must be positive, got {value}")


def run_teacher_sample(args: TeacherSample) -> None:
    import torch

    from uni3d.cameras import Cameras, CameraSampler
    from uni3d.teachers import load_teacher
    from uni3d.teachers.sampling import sample

    _positive("n", args.n)
    _positive("steps", args.steps)
    if not args.prompt.strip() and not args.unconditional:
        raise UserError("empty prompt: give a prompt such as 'a red mug', or pass --unconditional for unconditional samples")
    if args.no_camera and (args.azimuth is not None or args.elevation is not None):
        raise UserError("--no-camera cannot be combined with --azimuth/--elevation")
    teacher = load_teacher(args.teacher)
    teacher.embed(args.prompt)  # validates the vocabulary before anything is written
    g = torch.Generator().manual_seed(args.seed)
    if args.no_camera:
        cams = None
    elif args.azimuth is None and args.elevation is None:
        cams = CameraSampler().sample(args.n, generator=g)
    else:
        cams = Cameras.from_angles([args.azimuth if args.azimuth is not None else 0.0] * args.n,
                                   [args.elevation if args.elevation is not None else 20.0] * args.n)
    cfg = args.cfg if args.cfg is not None else getattr(getattr(teacher, "meta", None), "default_cfg", 7.5)
    images = sample(teacher, args.prompt, args.n, cams, cfg_scale=cfg, steps=args.steps, generator=g, sampler=args.sampler)
    _write_images(images, args.out)
    print(f"wrote {args.n} samples and grid.png to {args.out}")


def _write_images(images, out: Path) -> None:
    import imageio.v3 as iio

    from uni3d.teachers.sampling import image_grid

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {out}: {exc.strerror}") from exc
    to8 = lambda x: (x.permute(1, 2, 0).numpy() * 255).round().astype("uint8")  # noqa: E731
    for i, img in enumerate(images):
        iio.imwrite(out / f"sample_{i:03d}.png", to8(img))
    iio.imwrite(out / "grid.png", to8(image_grid(images)))


def run_world_mesh(args: WorldMesh) -> None:
    from uni3d.world.captions import parse_prompt
    from uni3d.world.mesh import ground_truth_mesh

    try:
        parsed = parse_prompt(args.prompt)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if parsed.shape is None or parsed.colour is None:
        raise UserError(f"{args.prompt!r} leaves the {'shape' if parsed.shape is None else 'colour'} open: "
                        "world mesh needs a fully specified prompt such as 'a red mug'")
    if args.out.suffix.lower() not in (".glb", ".obj", ".ply"):
        raise UserError(f"unsupported mesh format {args.out.suffix!r}: use .glb, .obj or .ply")
    _positive("resolution", args.resolution)
    mesh = ground_truth_mesh(parsed.shape, parsed.colour, args.resolution)
    if not args.out.parent.exists():
        raise UserError(f"output directory {args.out.parent} does not exist")
    mesh.export(args.out)
    print(f"wrote {args.out} ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces)")


@dataclass
class Export:
    """Export the mesh of a finished (or checkpointed) run."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """The run directory written by uni3d generate."""
    format: Literal["glb", "obj", "ply"] = "glb"
    """Mesh format."""
    out: Annotated[Path | None, _arg("-o")] = None
    """Output file (default: RUN_DIR/mesh.FORMAT)."""
    resolution: int | None = None
    """Marching-cubes resolution (default: the run's)."""
    level: float | None = None
    """Density iso-level (default: automatic)."""
    method: Literal["density", "tsdf"] | None = None
    """density: isosurface of the density; tsdf: fusion of rendered depth (suits Gaussians). Default: the run's."""
    close_radius: float | None = None
    """Radius (world units) of the morphological closing that seals stray tunnels; 0 disables it. Default: the run's."""
    pit_radius: float | None = None
    """Radius (world units) of the wider closing that fills pits but changes no handle; 0 disables it. Default: the run's."""
    hidden_views: int | None = None
    """Views per ring of the test that fills space no view sees into; 0 disables it. Default: the run's."""


def run_export(args: Export) -> None:
    import dataclasses

    from uni3d.export import extract_mesh, mesh_route, save_mesh
    from uni3d.generate import load_run

    for flag, value in (("--close-radius", args.close_radius), ("--pit-radius", args.pit_radius),
                        ("--hidden-views", args.hidden_views)):
        if value is not None and value < 0:
            raise UserError(f"{flag} must be 0 (off) or positive, got {value}")
    cfg, scene = load_run(args.run_dir)
    export_cfg = dataclasses.replace(cfg.export, **{k: v for k, v in (("resolution", args.resolution), ("level", args.level),
                                                                              ("method", args.method),
                                                                              ("close_radius", args.close_radius),
                                                                              ("pit_radius", args.pit_radius),
                                                                              ("hidden_views", args.hidden_views))
                                                    if v is not None})
    mesh = extract_mesh(scene, export_cfg)
    out = args.out or args.run_dir / f"mesh.{args.format}"
    if out.suffix.lstrip(".").lower() != args.format:
        raise UserError(f"--out {out} does not end in .{args.format}")
    save_mesh(mesh, out)
    print(f"wrote {out} ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces; {mesh_route(export_cfg)})")


@dataclass
class Evaluate:
    """Score a finished run of a Shapes World prompt against ground truth; stores evaluation.json."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """The run directory written by uni3d generate."""


def run_evaluate(args: Evaluate) -> None:
    from uni3d.evaluate import evaluate_run

    if not (args.run_dir / "config.yaml").exists():
        raise UserError(f"{args.run_dir} is not a uni3d run (no config.yaml)")
    try:
        r = evaluate_run(args.run_dir)
    except ValueError as exc:  # not a Shapes World prompt
        raise UserError(str(exc)) from None
    print(f"{r['prompt']}: nearest shape {r['nearest_shape']}, Chamfer-L1 {r['chamfer']:.4f}, "
          f"F@0.05 {r['fscore']:.3f}, IoU {r['iou']:.3f}, colour {r['colour']} (classifier: {r.get('view_colour')}), "
          f"handles {r['handles']}, {_seconds(r)}, peak {r.get('peak_memory_mb')} MB")
    print(f"stored {args.run_dir / 'evaluation.json'}")


def run_teacher_train(args) -> None:
    from uni3d.teachers.train_shapes import train

    print(f"teacher written to {train(args)}")


def run_generate(args) -> None:
    from uni3d.generate import generate

    out = generate(args)
    print(f"run written to {out}")


def _flag(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in argv (the last one), or None."""
    value = None
    for i, a in enumerate(argv):
        if a.startswith(f"{name}="):
            value = a.split("=", 1)[1]
        elif a == name and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def _generate_default(argv: list[str]):
    """The base that the flags of ``uni3d generate`` override: the --config preset if given, else the preset of
    the method (--method, --divergence; by default Uni-Instruct forward KL), so that ``--method sds`` runs SDS
    as tuned in configs/sds.yaml."""
    from uni3d.config import GenerateConfig, load_preset, method_preset

    cfg = GenerateConfig()
    path = _flag(argv, "--config")
    if path is None:
        preset = method_preset(_flag(argv, "--method") or cfg.guidance.method,
                               _flag(argv, "--divergence") or cfg.guidance.divergence)
        return load_preset(preset, cfg) if preset is not None else cfg
    return load_preset(Path(path), cfg)


def _commands() -> dict[str, tuple[type, Callable, str]]:
    from uni3d.compare.batch import CompareConfig, run_compare
    from uni3d.config import GenerateConfig
    from uni3d.nerfstudio.view import View, run_view
    from uni3d.teachers.train_shapes import TeacherTrainConfig

    return {
        "generate": (GenerateConfig, run_generate, "prompt -> 3D scene -> mesh (the main job)"),
        "export": (Export, run_export, "mesh of a run in glb, obj or ply"),
        "evaluate": (Evaluate, run_evaluate, "score a Shapes World run against ground truth"),
        "compare": (CompareConfig, run_compare, "methods x prompts x seeds: resumable batch, results.csv, reports"),
        "view": (View, run_view, "open a run in nerfstudio's viewer (needs uni3d[nerfstudio])"),
        "teacher sample": (TeacherSample, run_teacher_sample, "draw images from a teacher"),
        "teacher train": (TeacherTrainConfig, run_teacher_train, "train the shapes teacher from scratch"),
        "world mesh": (WorldMesh, run_world_mesh, "ground-truth mesh of a Shapes World prompt"),
    }


def _usage(commands) -> str:
    lines = ["usage: uni3d COMMAND [ARGS] (uni3d COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:<18} {desc}" for name, (_, _, desc) in commands.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    _unwrap_field_docs()
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in commands:
            cls, fn, _ = commands[name]
            try:
                default = _generate_default(argv[words:]) if name == "generate" else None
                args = tyro.cli(cls, args=argv[words:], prog=f"uni3d {name}", description=cls.__doc__, default=default)
                fn(args)
            except UserError as exc:
                print(f"uni3d {name}: error: {exc}", file=sys.stderr)
                return 2
            except Interrupted as exc:
                print(f"uni3d {name}: {exc}; checkpoint saved, continue with --resume", file=sys.stderr)
                return 130
            return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands))
        return 0
    print(f"uni3d: error: unknown command {' '.join(argv[:2])!r}\n{_usage(commands)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
