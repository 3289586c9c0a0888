"""``ftrt train restorer | colour-head | syn | vessels | denoiser | refiner | readability | vae | ldm``

(needs torch: the ``train`` extra)."""

from __future__ import annotations

import json
from typing import Any, Callable

import click

from ftrt.cli.common import DEGRADE_KINDS, fail
from ftrt.cli.main import main


@main.group()
def train() -> None:
    """Train ftrt models (needs the ``train`` extra: torch)."""


def _generator_run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``train restorer`` and ``train syn`` share: config file, run folder, schedule, resume."""
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML config."),
        click.option("--out", help="Run folder (checkpoints, logs, final weights)."),
        click.option("--steps", type=int),
        click.option("--batch-size", type=int),
        click.option("--crop", type=int),
        click.option("--lr", type=float),
        click.option("--seed", type=int),
        click.option("--resume", is_flag=True, help="Continue from OUT/last."),
        click.option("--set", "sets", multiple=True, help="Any config field as key=value (repeatable)."),
        click.option("--no-progress", is_flag=True),
    ]):
        f = option(f)
    return f


@train.command("restorer")
@click.option("--data", multiple=True, help="Folder, file or glob of GOOD images (repeatable).")
@click.option("--model", help="Preset to train (res-s, res-m, res-l).")
@click.option("--kind", type=click.Choice(DEGRADE_KINDS), help="Degradation of the pairs (syn: --syn-model).")
@click.option("--syn-model", help="Catintell-Syn generator for Syn pairs (default: the shipped syn).")
@click.option("--syn-fraction", type=float, help="Share of Syn pairs mixed into --kind's classical pairs.")
@click.option("--real-lq", multiple=True,
              help="Real low-quality photographs (repeatable): adds the mean-teacher consistency loss.")
@click.option("--init", help="Start from these weights (shipped name or .safetensors).")
@_generator_run_options
def train_restorer(config_path: str | None, data: tuple[str, ...], real_lq: tuple[str, ...], resume: bool,
                   sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train a restoration generator on pairs synthesised on the fly from good images."""
    from ftrt.training.config import RestorerConfig
    from ftrt.training.restorer import restorer_trainer

    lists = {"data": list(data), "real_lq": list(real_lq)}
    cfg = _train_config(RestorerConfig, config_path, opts, lists, sets)
    if not cfg.data:
        fail("no training data: give --data DIR (good fundus photographs)")
    _train(lambda: restorer_trainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("colour-head")
@click.option("--init", default="res-s", show_default=True,
              help="Restorer with an affine head (shipped name, .safetensors or run folder).")
@click.option("--data", multiple=True, required=True,
              help="GOOD photographs from the camera to calibrate for (repeatable).")
@click.option("--out", default="runs/colour-head", show_default=True, help="Run folder.")
@click.option("--kind", type=click.Choice([k for k in DEGRADE_KINDS if k != "syn"]), default="real", show_default=True,
              help="Degradation of the samples: real is the restorer's own training family (cofe and cataract are "
                   "the quality benchmark's held-out families).")
@click.option("--samples", type=int, default=24, show_default=True, help="Degraded versions of each photograph.")
@click.option("--steps", type=int, default=400, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Degradations and the validation hold-out (use the restorer run's seed to hold out the same).")
@click.option("--offset-only", is_flag=True, help="Shift each channel only, no gain (keeps the contrast).")
@click.option("--no-progress", is_flag=True)
def train_colour_head(init: str, data: tuple[str, ...], out: str, kind: str, samples: int, steps: int, lr: float,
                      seed: int, offset_only: bool, no_progress: bool) -> None:
    """Fit the global colour head to one camera: whole photographs, network frozen (minutes on a CPU)."""
    from ftrt.training.colour_head import ColourHeadConfig, fit_colour_head

    cfg = ColourHeadConfig(init=init, data=list(data), out=out, kind=kind, samples=samples, steps=steps, lr=lr,
                           seed=seed, offset_only=offset_only)
    try:
        result = fit_colour_head(cfg, progress=not no_progress, log=lambda m: click.echo(m, err=True))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    click.echo(json.dumps(result, indent=2))


@train.command("syn")
@click.option("--good", multiple=True, help="Folder, file or glob of GOOD photographs (repeatable).")
@click.option("--cataract", multiple=True, help="Folder, file or glob of REAL cataract photographs (repeatable).")
@_generator_run_options
def train_syn(config_path: str | None, good: tuple[str, ...], cataract: tuple[str, ...], resume: bool,
              sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train the Catintell-Syn generator (good -> cataract-like) against unpaired real cataract photographs."""
    from ftrt.training.config import SynConfig
    from ftrt.training.syn import SynTrainer

    cfg = _train_config(SynConfig, config_path, opts, {"good": list(good), "cataract": list(cataract)}, sets)
    if not cfg.good or not cfg.cataract:
        fail("Syn training needs --good DIR and --cataract DIR")
    _train(lambda: SynTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("vae")
@click.option("--data", multiple=True, help="Folder, file or glob of photographs, any quality (repeatable).")
@_generator_run_options
def train_vae(config_path: str | None, data: tuple[str, ...], resume: bool, sets: tuple[str, ...],
              no_progress: bool, **opts: Any) -> None:
    """Train the latent-diffusion autoencoder (BCE reconstruction + small KL) on unpaired photographs."""
    from ftrt.training.config import VaeConfig
    from ftrt.training.ldm import VaeTrainer

    cfg = _train_config(VaeConfig, config_path, opts, {"data": list(data)}, sets)
    if not cfg.data:
        fail("no training data: give --data DIR (fundus photographs of any quality)")
    _train(lambda: VaeTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("vessels")
@click.option("--data", multiple=True, help="Folder, file or glob of clean annotated photographs (repeatable).")
@click.option("--vessel-masks", multiple=True, help="Folder of their vessel annotations (DRIVE's 1st_manual).")
@_generator_run_options
def train_vessels(config_path: str | None, data: tuple[str, ...], vessel_masks: tuple[str, ...], resume: bool,
                  sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train the vessel segmenter that judges the restorer's vessel-map loss (clean photographs only)."""
    from ftrt.training.config import VesselConfig
    from ftrt.training.vessels import VesselTrainer

    cfg = _train_config(VesselConfig, config_path, opts, {"data": list(data), "vessel_masks": list(vessel_masks)},
                        sets)
    if not cfg.data or not cfg.vessel_masks:
        fail("no training data: give --data DIR and --vessel-masks DIR (clean photographs and their annotations)")
    _train(lambda: VesselTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("denoiser")
@click.option("--data", multiple=True, help="Folder, file or glob of clean photographs (repeatable).")
@_generator_run_options
def train_denoiser(config_path: str | None, data: tuple[str, ...], resume: bool, sets: tuple[str, ...],
                   no_progress: bool, **opts: Any) -> None:
    """Train the sensor-noise remover that runs before the restorer where a photograph is noisy (dn-res-s)."""
    from ftrt.training.config import DenoiserConfig
    from ftrt.training.denoise import DenoiserTrainer

    cfg = _train_config(DenoiserConfig, config_path, opts, {"data": list(data)}, sets)
    if not cfg.data:
        fail("no training data: give --data DIR (clean fundus photographs)")
    _train(lambda: DenoiserTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("refiner")
@click.option("--data", multiple=True, help="Folder, file or glob of clean photographs (repeatable).")
@_generator_run_options
def train_refiner(config_path: str | None, data: tuple[str, ...], resume: bool, sets: tuple[str, ...],
                  no_progress: bool, **opts: Any) -> None:
    """Train the detail refiner that runs behind the restorer, on that restorer's own outputs (writes them once)."""
    from ftrt.training.config import RefinerConfig
    from ftrt.training.refine import RefinerTrainer

    cfg = _train_config(RefinerConfig, config_path, opts, {"data": list(data)}, sets)
    if not cfg.data:
        fail("no training data: give --data DIR (clean fundus photographs)")
    _train(lambda: RefinerTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("ldm")
@click.option("--phase", type=click.Choice(["reconstruct", "adapt"]),
              help="reconstruct: denoiser on unpaired photographs (needs --vae); adapt: adaptors only, on "
                   "degraded pairs (needs --init).")
@click.option("--data", multiple=True, help="Folder, file or glob of photographs (repeatable).")
@click.option("--vae", help="reconstruct: the trained autoencoder (.safetensors or run folder).")
@click.option("--init", help="adapt: the reconstruction phase's weights.")
@click.option("--kind", type=click.Choice(DEGRADE_KINDS), help="adapt: the degradation of the pairs.")
@_generator_run_options
def train_ldm(config_path: str | None, data: tuple[str, ...], resume: bool, sets: tuple[str, ...],
              no_progress: bool, **opts: Any) -> None:
    """Train the latent denoiser (reconstruction phase) or its enhancement adaptors (adaptation phase)."""
    from ftrt.training.config import LdmConfig
    from ftrt.training.ldm import LdmTrainer

    cfg = _train_config(LdmConfig, config_path, opts, {"data": list(data)}, sets)
    if not cfg.data:
        fail("no training data: give --data DIR")
    _train(lambda: LdmTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


def _train_config(cls: type, config_path: str | None, opts: dict[str, Any], lists: dict[str, list[str]],
                  sets: tuple[str, ...]) -> Any:
    from ftrt.training.config import load_config

    overrides = {k: v for k, v in opts.items() if v is not None}
    overrides.update({k: v for k, v in lists.items() if v})
    try:
        return load_config(cls, config_path, overrides, list(sets))
    except ValueError as exc:
        fail(str(exc))


def _train(make: Callable[[], Any], cfg: Any, resume: bool, no_progress: bool) -> None:
    try:
        trainer = make()
        if resume:
            trainer.resume_run()
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    click.echo(json.dumps(trainer.run(progress=not no_progress), indent=2))


@train.command("readability")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML config.")
@click.option("--data-root", help="The shared data folder (drimdb/, drive/, odir_eyedisease/, csdi/).")
@click.option("--model", help="readability (edge backbone) or readability-inception.")
@click.option("--out", help="Run folder.")
@click.option("--steps", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--seed", type=int)
@click.option("--set", "sets", multiple=True, help="Any config field as key=value (repeatable).")
@click.option("--no-progress", is_flag=True)
def train_readability(config_path: str | None, sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train the readability classifier; prints the held-out report (also in OUT/card.json)."""
    from ftrt.training.config import ReadabilityConfig, load_config
    from ftrt.training.readability import ReadabilityTrainer

    try:
        cfg = load_config(ReadabilityConfig, config_path, {k: v for k, v in opts.items() if v is not None},
                          list(sets))
        trainer = ReadabilityTrainer(cfg, log=lambda m: click.echo(m, err=True))
    except ValueError as exc:
        fail(str(exc))
    click.echo(json.dumps(trainer.run(progress=not no_progress), indent=2))
