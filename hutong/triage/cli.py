"""``hutong triage …``: ask a question, train and install a model from an operator's own labelled
questions, evaluate a model on a labelled CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer

triage_app = typer.Typer(help="智能导诊 Triage: ask, train and evaluate the department model.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``triage`` command group to the main CLI."""
    app.add_typer(triage_app, name="triage")


def _settings(data_dir: Path | None):
    from hutong.config import load_settings

    return load_settings(data_dir=data_dir)


def _read_csv(path: Path, text_column: str, label_column: str, age_column: str | None = None):
    from hutong.triage.departments import resolve

    rows, unknown = [], {}
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from None
    with fh:
        reader = csv.DictReader(fh)
        for col in (text_column, label_column, age_column):
            if col and col not in (reader.fieldnames or []):
                raise typer.BadParameter(f"{path} has no column {col!r} (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            text = (row.get(text_column) or "").strip()
            label = (row.get(label_column) or "").strip()
            if not text or not label:
                continue
            code = resolve(label)
            if code is None:
                unknown[label] = unknown.get(label, 0) + 1
                continue
            age = None
            if age_column and (row.get(age_column) or "").strip():
                try:
                    age = float(row[age_column])
                except ValueError:
                    age = None
            rows.append((text, code, label, age))
    return rows, unknown


@triage_app.command("ask")
def ask_cmd(
    text: str = typer.Argument(..., help="The question, e.g. 孩子发烧三天咳嗽"),
    age: float = typer.Option(None, help="Age in years"),
    sex: str = typer.Option(None, help="male / female"),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (for an installed model)"),
):
    """Triage one question and print the answer as JSON."""
    from hutong.core.errors import FhirError
    from hutong.triage.install import triager_for

    try:
        answer = triager_for(_settings(data_dir)).answer(text, age, sex)
    except FhirError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))


@triage_app.command("train")
def train_cmd(
    csv_path: Path = typer.Argument(..., help="UTF-8 CSV of labelled questions"),
    text_column: str = typer.Option(..., "--text-column"),
    label_column: str = typer.Option(..., "--label-column",
                                      help="Department: a national code (03.04) or a name (心内科, 呼吸内科 …)"),
    with_knowledge: bool = typer.Option(True, "--with-knowledge/--without-knowledge",
                                        help="Add the questions written from the built-in knowledge base"),
    keyword_blend: float = typer.Option(0.4, help="Weight of knowledge-base keywords at answer time (0 = off)"),
    output: Path = typer.Option(None, "--output", help="Write the model here instead of installing it"),
    data_dir: Path = typer.Option(None, "--data-dir"),
):
    """Train a department model on your own labelled questions and install it for this node."""
    from collections import Counter

    from hutong.triage.install import install
    from hutong.triage.model import train
    from hutong.triage.synth import synthesize

    rows, unknown = _read_csv(csv_path, text_column, label_column)
    if unknown:
        typer.echo("skipped labels that are not departments of the national list: "
                   + ", ".join(f"{k} ({v})" for k, v in sorted(unknown.items(), key=lambda kv: -kv[1])[:20]), err=True)
    texts = [r[0] for r in rows]
    labels = [r[1] for r in rows]
    if with_knowledge:
        for text, code in synthesize():
            texts.append(text)
            labels.append(code)
    if len(set(labels)) < 2:
        typer.echo("need labelled questions of at least two departments", err=True)
        raise typer.Exit(2)
    counts = Counter(labels)
    weights = [len(labels) / (len(counts) * counts[lab]) for lab in labels]
    meta = {"name": f"custom:{csv_path.name}", "operator_questions": len(rows), "keyword_blend": keyword_blend,
            "knowledge_base": with_knowledge}
    model = train(texts, labels, weights=weights, meta=meta)
    if output is not None:
        model.save(output)
        where = output
    else:
        where = install(model, _settings(data_dir))
    typer.echo(f"trained on {len(rows)} of your questions ({len(texts)} in all), {len(model.classes)} departments; "
               f"written to {where}")


@triage_app.command("eval")
def eval_cmd(
    csv_path: Path = typer.Argument(..., help="UTF-8 CSV of labelled questions"),
    text_column: str = typer.Option(..., "--text-column"),
    label_column: str = typer.Option(..., "--label-column"),
    age_column: str = typer.Option(None, "--age-column"),
    model: Path = typer.Option(None, "--model", help="A model file (default: this node's model)"),
    data_dir: Path = typer.Option(None, "--data-dir"),
):
    """Print top-1 / top-3 accuracy and a confusion table of the node's (or a given) model."""
    from hutong.triage.departments import department
    from hutong.triage.evaluate import confusion_table, evaluate, summary
    from hutong.triage.install import triager_for
    from hutong.triage.model import TriageModel
    from hutong.triage.service import Triager

    rows, unknown = _read_csv(csv_path, text_column, label_column, age_column)
    if not rows:
        typer.echo("no labelled rows with a known department", err=True)
        raise typer.Exit(2)
    try:
        svc = Triager(TriageModel.load(model)) if model else triager_for(_settings(data_dir))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    ages = {text: age for text, _, _, age in rows}
    items = [(text, (code,), department(code).common) for text, code, _, _ in rows]
    scores = evaluate(lambda t: [d["code"] for d in svc.answer(t[:2000], ages.get(t))["departments"]], items)
    typer.echo(summary(scores))
    typer.echo("per department (n, top-1, top-3):")
    for label, (n, h1, h3) in sorted(scores.per_label.items(), key=lambda kv: -kv[1][0]):
        typer.echo(f"  {label:<12} {n:>6}  {h1 / n:6.1%}  {h3 / n:6.1%}")
    typer.echo("confusion (expected → predicted first):")
    typer.echo(confusion_table(scores, lambda c: department(c).common if c != "-" else "-"))
    if unknown:
        typer.echo(f"skipped {sum(unknown.values())} rows with labels outside the national list", err=True)


@triage_app.command("departments")
def departments_cmd():
    """Print the national department list shipped with Hutong."""
    from hutong.triage.departments import departments

    for d in departments().values():
        typer.echo(f"{d.code:<6} {d.name}（{d.common}）")
