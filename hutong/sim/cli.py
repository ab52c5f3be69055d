"""``hutong simulate``: the typer command (the lead's ``hutong/cli.py`` calls :func:`register`)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import typer

from hutong.sim.config import SimConfig, VariationRates


def _parse_var(items: list[str]) -> dict[str, float]:
    known = set(VariationRates.__dataclass_fields__)
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise typer.BadParameter(f"--var 需要 名称=比率，名称之一: {', '.join(sorted(known))}")
        out[key] = float(val)
    return out


def simulate_command(
    residents: int = typer.Option(None, "--residents", "-n", help="居民人数 (default 10000)"),
    years: int = typer.Option(None, "--years", "-y", help="模拟年数 (default 1)"),
    seed: int = typer.Option(None, "--seed", "-s", help="随机种子；相同种子输出逐字节相同 (default 1)"),
    out: Path = typer.Option(Path("./hutong-sim"), "--out", "-o", help="输出目录 (NDJSON per resource type)"),
    per_institution: bool = typer.Option(False, "--per-institution", help="另按机构输出 institutions/{org}/Type.ndjson"),
    config: Path = typer.Option(None, "--config", "-c", help="TOML/JSON config file ([variation] table for rates)"),
    var: list[str] = typer.Option([], "--var", help="变异比率, e.g. --var id_missing=0.1 (repeatable)"),
    start_year: int = typer.Option(None, "--start-year", help="first simulated year (default 2024)"),
    practitioner_scale: float = typer.Option(None, "--practitioner-scale", help="医生数量倍数 (default 1.0)"),
    load: str = typer.Option(None, "--load", help="导入运行中的服务器 FHIR base, e.g. http://127.0.0.1:8080/fhir"),
    bundle_size: int = typer.Option(500, "--bundle-size", help="entries per Bundle when loading"),
    bundle_type: str = typer.Option("transaction", "--bundle-type", help="transaction | batch"),
    jobs: int = typer.Option(0, "--jobs", "-j", help="并行进程数 (default: one per CPU); 输出与进程数无关"),
) -> None:
    """生成模拟省份（吉林）：机构、医生、居民、就诊、检验检查与处方，以及主索引评估用的真值文件。"""
    from hutong.sim.generate import simulate

    cfg = SimConfig.from_file(config) if config else SimConfig()
    overrides = {k: v for k, v in {"residents": residents, "years": years, "seed": seed, "start_year": start_year,
                                   "practitioner_scale": practitioner_scale}.items() if v is not None}
    cfg = replace(cfg, **overrides, per_institution=per_institution or cfg.per_institution)
    if var:
        cfg = cfg.with_variation(**_parse_var(var))
    t0 = time.perf_counter()
    manifest = simulate(cfg, out, jobs=jobs or None)
    dt = time.perf_counter() - t0
    total = manifest["total_resources"]
    typer.echo(f"已生成 {total:,} 条资源 ({manifest['residents']:,} 名居民) → {out}  用时 {dt:.1f}s ({total / dt:,.0f} 条/秒)")
    for t, n in manifest["counts"].items():
        typer.echo(f"  {t:<18} {n:>10,}")
    if load:
        from hutong.sim.load import load as do_load

        res = do_load(out, load, size=bundle_size, bundle_type=bundle_type)
        typer.echo(f"已导入 {res['resources']:,} 条 / {res['bundles']:,} 个 Bundle，错误 {res['errors']:,}")
        if res["errors"]:
            typer.echo(f"首个错误: {res['first_error']}", err=True)
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to the top-level ``hutong`` app."""
    app.command("simulate")(simulate_command)


def main() -> None:  # pragma: no cover - convenience: python -m hutong.sim.cli
    app = typer.Typer(add_completion=False)
    register(app)

    @app.callback()
    def _root() -> None:
        """Hutong simulator."""

    app()


if __name__ == "__main__":  # pragma: no cover
    main()
