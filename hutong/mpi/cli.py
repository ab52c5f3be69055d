"""``hutong mpi …`` commands: batch deduplication / linkage of CSV files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hutong.mpi.model import Thresholds


def register(app: typer.Typer) -> None:
    """Add the ``mpi`` command group to the main CLI."""
    mpi = typer.Typer(help="主索引（患者主索引 EMPI）/ master patient index", no_args_is_help=True)

    @mpi.command("dedup")
    def dedup(
        input_csv: Path = typer.Argument(..., exists=True, dir_okay=False, help="输入 CSV / input CSV (UTF-8)"),
        map_spec: str = typer.Option(None, "--map", help="FIELD=COLUMN,…（COLUMN+COLUMN 拼接）; fields: record_id "
                                     "(required), name, family, given, gender, birth_date, id_number, identifier, "
                                     "phone, address, address_code, postcode, city, state"),
        output: Path = typer.Option(..., "--output", "-o", help="输出 record_id,cluster_id"),
        link: Path = typer.Option(None, "--link", exists=True, dir_okay=False, help="与另一文件链接 / link with another file"),
        link_map: str = typer.Option(None, "--link-map", help="第二个文件的映射（默认同 --map）/ mapping of the --link file"),
        threshold: float = typer.Option(None, "--threshold", help="聚类概率阈值 / link probability threshold"),
        model_out: Path = typer.Option(None, "--model-out", help="保存估计出的 m/u 参数（JSON）/ write the fitted model"),
    ) -> None:
        """去重（或链接两个文件）：输出 record_id,cluster_id。Deduplicate (or link two files)."""
        from hutong.mpi import batch

        th = Thresholds(link=threshold) if threshold is not None else Thresholds()
        inputs = [(input_csv, map_spec)]
        if link is not None:
            inputs.append((link, link_map or map_spec))
        try:
            result = batch.dedup_files(inputs, thresholds=th)
        except ValueError as exc:
            typer.echo(f"错误 / error: {exc}", err=True)
            raise typer.Exit(2) from exc
        batch.write_clusters(output, result, with_source=link is not None)
        n_clusters = len(set(result.cluster_ids))
        typer.echo(
            f"记录 {len(result.record_ids)} 条 → 聚类 {n_clusters} 个；候选对 {result.n_candidates}；"
            f"用时 {result.timings.get('total_s', 0):.1f}s / records, clusters, candidate pairs, time"
        )
        if result.bad_rows:
            typer.echo(f"坏行 {len(result.bad_rows)} 条（已跳过）/ bad rows skipped:", err=True)
            for b in result.bad_rows[:5]:
                typer.echo(f"  {b.source}:{b.line}: {b.reason}", err=True)
        if model_out is not None:
            model_out.write_text(json.dumps(result.model.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    app.add_typer(mpi, name="mpi")
