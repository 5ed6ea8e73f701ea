"""`quantum llm ...` (build the base model, fine-tune, evaluate) and `quantum chat`.

``python -m llm.cli --model-path models/chatbot`` runs the chat alone (as `quantum chat`).

Every default works offline: the corpus comes from the synthetic market (llm.corpus),
the base model is trained here, and the chat falls back to a small synthetic market
when no bars are given. Long jobs show a progress bar and end with a summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(help="The trading language model: base model, LoRA fine-tune, evaluation.")
console = Console()
errors = Console(stderr=True)

Seed = Annotated[int, typer.Option(help="Seed of the corpus and of training.")]
Days = Annotated[float, typer.Option(help="Days of synthetic market per corpus split.")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )


def _train_progress(progress: Progress, description: str, total: int):
    task = progress.add_task(description, total=total, status="")

    def update(step: int, steps: int, loss: float) -> None:
        progress.update(task, completed=step, total=steps, status=f"loss {loss:.3f}")

    return update


def _corpus(seed: int, days: float, snapshots: int | None = None):
    from llm.corpus import CorpusConfig, build_corpus

    extra = {} if snapshots is None else {"snapshots": snapshots}
    with console.status("generating the corpus from the synthetic market"):
        return build_corpus(CorpusConfig(seed=seed, days=days, **extra))


def _summary(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    for key, value in values.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command("build-base")
def build_base_command(
    out: Annotated[Path, typer.Option(help="Folder for the model and tokenizer.")] = Path(
        "models/base"
    ),
    steps: Annotated[int, typer.Option(help="Pretraining steps.")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Packed sequences per step.")] = 16,
    seed: Seed = 0,
    days: Days = 20.0,
    snapshots: Annotated[int, typer.Option(help="Market moments in the corpus.")] = 400,
) -> None:
    """Pretrain the base model (tokenizer + Llama-style causal LM) on generated commentary."""
    from llm.training import BaseModelConfig, build_base

    corpus = _corpus(seed, days, snapshots)
    config = BaseModelConfig(steps=steps, batch_size=batch_size, seed=seed)
    provenance = {"corpus": corpus.provenance}
    with _progress() as progress:
        update = _train_progress(progress, "pretraining", steps)
        build_base(list(corpus.pretrain), out, config, provenance=provenance, progress=update)
    _summary(f"base model saved to {out}", _provenance_summary(out))


@app.command("finetune")
def finetune_command(
    base_model: Annotated[Path, typer.Option(help="Base model folder.")] = Path("models/base"),
    out: Annotated[Path, typer.Option(help="Folder for the LoRA adapter.")] = Path(
        "models/chatbot"
    ),
    steps: Annotated[int, typer.Option(help="Fine-tuning steps.")] = 600,
    seed: Annotated[int | None, typer.Option(help="Corpus seed (default: the base's).")] = None,
    days: Annotated[float | None, typer.Option(help="Corpus days (default: the base's).")] = None,
) -> None:
    """Fine-tune a LoRA adapter on question/answer pairs with placeholders."""
    from llm.training import LoraConfigSpec, finetune_lora

    recorded = _base_corpus(base_model)
    seed = recorded.get("seed", 0) if seed is None else seed
    days = recorded.get("days", 20.0) if days is None else days
    corpus = _corpus(seed, days, recorded.get("snapshots"))
    config = LoraConfigSpec(steps=steps, seed=seed)
    with _progress() as progress:
        update = _train_progress(progress, "fine-tuning", steps)
        finetune_lora(base_model, list(corpus.pairs), out, config,
                      provenance={"corpus": corpus.provenance}, progress=update)
    _summary(f"adapter saved to {out}", _provenance_summary(out))


@app.command("eval")
def eval_command(
    model_path: Annotated[Path, typer.Option(help="Model or adapter folder.")] = Path(
        "models/chatbot"
    ),
    base_model: Annotated[Path | None, typer.Option(help="Base of an adapter.")] = None,
    out: Annotated[Path, typer.Option(help="JSON report path.")] = Path("results/llm_eval.json"),
    seed: Annotated[int | None, typer.Option(help="Corpus seed (default: the model's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N questions.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Fact accuracy on held-out questions (raw model and after grounding) and perplexity."""
    from llm.eval import evaluate, print_report
    from llm.model import LanguageModel

    recorded = _base_corpus(model_path)
    seed = recorded.get("seed", 0) if seed is None else seed
    corpus = _corpus(seed, recorded.get("days", 20.0), recorded.get("snapshots"))
    model = LanguageModel.load(model_path, base_model=base_model, device=device)
    items = corpus.eval_items[:limit] if limit else corpus.eval_items
    with _progress() as progress:
        task = progress.add_task("answering held-out questions", total=len(items), status="")
        report = evaluate(
            model, items, corpus.heldout_texts,
            provenance={"model_path": str(model_path), "corpus": corpus.provenance},
            progress=lambda n, total: progress.update(task, completed=n),
        )
    report.save(out)
    print_report(report, console)
    console.print(f"report saved to {out}")


def _base_corpus(path: Path) -> dict[str, Any]:
    """The corpus config recorded in a model's provenance (or its base's), if any."""
    file = Path(path) / "provenance.json"
    if not file.is_file():
        return {}
    data = json.loads(file.read_text())
    for source in (data, data.get("base_provenance") or {}):
        config = (source.get("corpus") or {}).get("config")
        if config:
            return config
    return {}


def _provenance_summary(path: Path) -> dict[str, Any]:
    data = json.loads((Path(path) / "provenance.json").read_text())
    keys = ("kind", "n_params", "n_trainable_params", "n_texts", "n_pairs", "n_tokens", "steps",
            "first_loss", "final_loss", "wall_seconds")
    return {k: data[k] for k in keys if k in data}


def _default_market():
    """A small synthetic market for a chat with no --market-data (the embedded default)."""
    from market.synthetic import SyntheticConfig, generate_market

    return generate_market(SyntheticConfig(days=3, seed=7)).aligned()


def run_chat(bot, lines: Iterable[str], out: Console, interactive: bool) -> None:
    """Answer each line; '/reset' clears the conversation, '/quit' (or EOF) ends."""
    for line in lines:
        message = line.strip()
        if not message:
            continue
        if message == "/quit":
            return
        if message == "/reset":
            bot.reset_conversation()
            errors.print("(conversation reset)")
            continue
        if interactive:
            for piece in bot.stream(message):
                out.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
            out.print()
        else:
            out.print(bot.chat(message), markup=False, highlight=False, soft_wrap=True)


def _typed_lines(prompt_console: Console) -> Iterable[str]:
    while True:
        try:
            yield prompt_console.input("[bold]you>[/bold] ")
        except EOFError:
            return


def chat_command(
    model_path: Annotated[Path, typer.Option(help="Model or LoRA adapter folder.")],
    base_model: Annotated[Path | None, typer.Option(help="Base model of an adapter.")] = None,
    market_data: Annotated[
        Path | None, typer.Option(help="Bars: CSV or parquet (default: a synthetic market).")
    ] = None,
    asset: Annotated[str, typer.Option(help="Asset name of single-asset market data.")] = "BTC",
    trading_signals: Annotated[
        Path | None, typer.Option(help="The policy's signal (JSON from /v1/signals).")
    ] = None,
    risk_report: Annotated[Path | None, typer.Option(help="Risk report JSON.")] = None,
    backtest: Annotated[Path | None, typer.Option(help="Backtest report folder.")] = None,
    news: Annotated[Path | None, typer.Option(
        help="Headlines: a `quantum news collect` store folder or a parquet file.")] = None,
    max_history: Annotated[int, typer.Option(help="Question/answer pairs remembered.")] = 5,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Chat about the market, the policy's signals, risk and backtests (/reset, /quit)."""
    from llm.chatbot import load_market_chatbot

    interactive = sys.stdin.isatty()
    out = Console(no_color=not sys.stdout.isatty(), highlight=False)
    try:
        bot = load_market_chatbot(model_path, base_model, max_history, device)
        if market_data is None:
            errors.print("no --market-data: using a synthetic market (seed 7, 3 days)")
            bot.update_market_data(_default_market())
        else:
            bot.update_market_data(market_data, asset=asset)
        if trading_signals is not None:
            bot.update_signals(trading_signals)
        if risk_report is not None:
            bot.update_risk(risk_report)
        if backtest is not None:
            bot.update_backtest(backtest)
        if news is not None:
            bot.update_news(news)
    except (OSError, ValueError) as exc:
        errors.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(code=1) from exc
    if interactive:
        errors.print("Ask about prices, indicators, signals, risk or backtests. /reset, /quit.")
    run_chat(bot, _typed_lines(out) if interactive else sys.stdin, out, interactive)


if __name__ == "__main__":
    typer.run(chat_command)
