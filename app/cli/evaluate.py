"""`lorag eval retrieval|answers|tagging`: measurements against gold data, written as JSON and Markdown reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorag.app.cli.base import cli_settings, edge
from lorag.app.cli.tagging import ExamplesOption, ModelOption, TaskOption, TaxonomyOption
from lorag.core.audience import Audience
from lorag.core.settings import Settings, redacted

app = typer.Typer(no_args_is_help=True, help="Measure retrieval and answers against gold questions.")

# Options the eval commands share.
KbOption = Annotated[str, typer.Option(help="Knowledge base to search.")]
SearchAudience = Annotated[Audience, typer.Option(help="Whose documents to search.")]
OutOption = Annotated[Path | None, typer.Option(help="Report folder; default LORAG_HOME/runs/eval.")]


@app.command("retrieval")
@edge
def eval_retrieval(
    kb: KbOption,
    qa: Annotated[Path, typer.Option(help="JSONL of questions with their gold document and section.")],
    audience: SearchAudience = Audience.INTERNAL,
    out: OutOption = None,
) -> None:
    """recall@k, MRR and nDCG@10 for dense, hybrid and (if configured) hybrid + reranker."""
    from lorag.app import wiring
    from lorag.retrieval import evaluate
    from lorag.retrieval.factory import build_reranker
    from lorag.retrieval.search import Retriever

    settings = cli_settings()
    items = evaluate.load_qa(qa)
    audiences = audience.visible
    with wiring.open_ingest(settings) as ctx:
        plain = Retriever(ctx.store, ctx.embedder)
        report: dict[str, object] = {
            mode: evaluate.retrieval_metrics(plain, items, kb=kb, audiences=audiences, mode=mode)
            for mode in ("dense", "sparse", "hybrid")
        }
        reranker = build_reranker(settings)
        if reranker is not None:
            reranked = Retriever(ctx.store, ctx.embedder, reranker)
            report["hybrid+reranker"] = evaluate.retrieval_metrics(reranked, items, kb=kb, audiences=audiences,
                                                                   mode="hybrid")
        else:
            report["reranker"] = "none configured (LORAG_RETRIEVAL__RERANKER)"
    _save_eval("retrieval", report, settings, qa, kb, out)


@app.command("answers")
@edge
def eval_answers(
    kb: KbOption,
    qa: Annotated[Path, typer.Option(help="JSONL of questions, gold answers, documents; answer null: unanswerable.")],
    audience: SearchAudience = Audience.INTERNAL,
    model: Annotated[str | None, typer.Option(help="Base model or adapter version.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions (generation is slow on a CPU).")] = None,
    out: OutOption = None,
) -> None:
    """Token-F1, ROUGE-L, citation precision/recall and abstention, answerable and unanswerable."""
    from lorag.app import wiring
    from lorag.retrieval import evaluate
    from lorag.retrieval.factory import build_answerer
    from lorag.serving.factory import build_answer_generator

    settings = cli_settings()
    items = evaluate.load_qa(qa)[:limit]
    audiences = audience.visible
    with wiring.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        metrics = evaluate.answer_metrics(
            lambda question: answerer.ask(question, kb=kb, audiences=audiences, model=model), items)
    _save_eval("answers", {"metrics": metrics, "model": model or "base"}, settings, qa, kb, out)


@app.command("tagging")
@edge
def eval_tagging(
    gold: Annotated[Path, typer.Option(help="Labelled items (JSONL, CSV or Parquet): a text column and tags.")],
    taxonomy: TaxonomyOption = None,
    task: TaskOption = None,
    model: ModelOption = None,
    examples: ExamplesOption = None,
    shots: Annotated[int | None, typer.Option(min=0, help="Labelled neighbours shown per item; default: 0 with an "
                                              "adapter (trained on bare prompts), 3 with the base model.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items generated together (bench/tag.py).")] = 32,
    limit: Annotated[int | None, typer.Option(help="Only the first N gold items.")] = None,
    out: OutOption = None,
) -> None:
    """Accuracy, macro-F1 per field and schema validity of `lorag tag` on a gold file."""
    from lorag.app.cli import tagging

    tagging.eval_tagging(cli_settings(), gold, taxonomy=taxonomy, task=task, model=model, examples=examples,
                             text_field=None, tags_field=None, shots=shots, batch_size=batch_size, limit=limit,
                             out=out)


def _save_eval(name: str, report: dict[str, object], settings: Settings, qa: Path, kb: str, out: Path | None) -> None:
    import hashlib
    import importlib.metadata

    report["run"] = {"kb": kb, "qa_file": str(qa), "qa_sha256": hashlib.sha256(qa.read_bytes()).hexdigest(),
                     "lorag": importlib.metadata.version("lorag"), "settings": redacted(settings)}
    from lorag.retrieval.evaluate import write_report

    json_path, md_path = write_report(name, report, out or settings.runs_dir / "eval")
    typer.echo(md_path.read_text())
    typer.echo(f"reports: {json_path} {md_path}")
