"""`hone models import`: a GGUF file to a full-precision Hugging Face folder Hone can train and merge."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Model folders: import other formats.", no_args_is_help=True)

    @group.command("import")
    def import_(
        src: Path = typer.Argument(..., help="A .gguf file (any quantization transformers can dequantize)."),
        out: Path = typer.Option(..., "-o", "--out", help="New folder for the Hugging Face model."),
        chat_template: Path = typer.Option(None, "--chat-template",
                                           help="Jinja chat template file, for a GGUF that has none (or to replace it)."),
        dtype: str = typer.Option("float32", help="dtype of the written weights: float32 | bfloat16 | float16."),
    ) -> None:
        """Dequantize SRC into OUT (safetensors, config, tokenizer, chat template, generation config, lineage)."""
        from hone.models.gguf import import_gguf

        lineage = import_gguf(src, out, chat_template=chat_template, dtype=dtype)
        q, d = lineage["base"]["quantization"], lineage["dequantized"]
        typer.echo(f"imported {src.name} ({lineage['base']['architecture']}, {q['file_type']}, sha256 "
                   f"{lineage['base']['sha256'][:12]}) -> {out}: {d['parameters'] / 1e6:.1f}M parameters in "
                   f"{d['dtype']}, EOS {lineage['tokenizer']['eos_token']}, end of turn "
                   f"{lineage['tokenizer']['end_of_turn']}")

    app.add_typer(group, name="models")
