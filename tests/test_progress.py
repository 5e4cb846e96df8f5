"""Progress: a Rich bar with rate, ETA and the training note on a terminal; plain lines at a sane rate elsewhere."""

import io
import time

from rich.console import Console

from hone import progress
from hone.progress import bar, stage_bar
from hone.train.callbacks import ProgressBar


def test_plain_lines_at_most_every_interval_and_one_at_the_end(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.2)
    with bar("round 1 · pass 0 · sample", total=100) as advance:
        for _ in range(100):
            advance(1)
            time.sleep(0.01)  # about 1 s in all: about 5 lines, not 100
    lines = capsys.readouterr().err.strip().splitlines()
    assert 2 <= len(lines) <= 8, lines
    assert all(line.startswith("round 1 · pass 0 · sample: ") and "/s" in line for line in lines)
    assert "eta" in lines[0] and lines[-1].startswith("round 1 · pass 0 · sample: 100/100 (100%)")


def test_resumed_stage_counts_earlier_items_and_training_note(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.02)
    with stage_bar("round 2 · train") as factory:
        advance = factory(6, 4)  # 4 steps done before a kill, 6 to go
        callback = ProgressBar(lambda todo, done: advance)
        callback.advance = advance
        for step in range(6):
            advance(1)
            callback.on_log(None, None, None, logs={"loss": 2.0 - step / 10, "num_tokens": 1000.0 * (step + 1)})
            time.sleep(0.01)
    err = capsys.readouterr().err
    assert "resuming, 4 done earlier, 6 to go" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("round 2 · train: 10/10 (100%)") and "loss 1.5" in last and "tokens/s" in last


def test_short_or_failed_stage_adds_no_line(capsys):
    with bar("grade", total=3) as advance:
        advance(3)
    try:
        with bar("generate", total=3):
            raise ValueError("no such model")
    except ValueError:
        pass
    assert capsys.readouterr().err == ""


def test_terminal_bar_shows_rate_eta_and_note(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=True, width=150))
    with bar("round 0 · generate arithmetic", total=50) as advance:
        for _ in range(50):
            advance(1)
            time.sleep(0.005)
        advance.note("loss 0.123")
    text = out.getvalue()
    assert "round 0 · generate arithmetic" in text and "50/50" in text and "/s" in text and "loss 0.123" in text


def test_note_source_is_reread_while_the_stage_runs(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.02)
    spent = iter(f"judge ${x:.4f} of $5.00" for x in range(100))
    with stage_bar("round 1 · pass 0 · judge", note=lambda: next(spent), note_every_s=0.02) as factory:
        advance = factory(20, 0)
        for _ in range(20):
            advance(1)
            time.sleep(0.01)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    n = int(last.split("judge $")[1].split(".")[0])
    assert last.startswith("round 1 · pass 0 · judge: 20/20") and 3 <= n <= 20, last


def test_token_rate_counts_only_this_attempts_new_tokens(tmp_path):
    from hone.records import Generation, dumps
    from hone.progress import TokenRate

    out = tmp_path / "samples-0.jsonl"
    partial = tmp_path / "samples-0.jsonl.partial"

    def append(i: int, tokens: int, torn: str = "") -> None:
        with open(partial, "a") as f:
            f.write(dumps(Generation(id=f"t{i}", model="m", output="x", tokens=tokens)) + "\n" + torn)

    append(0, 10_000)  # written before a kill: not this run's speed
    rate = TokenRate(out)
    assert rate() == ""
    time.sleep(0.2)
    append(1, 40)
    append(2, 60, torn='{"id": "t3", "tok')  # a line still being written is not read yet
    text = rate()
    assert text.endswith(" new tokens/s") and 100 <= float(text.split()[0].replace(",", "")) <= 500, text
