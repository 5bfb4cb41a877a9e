"""`mbnn evaluate`: the --plot figure end to end (the drawn numbers are the JSON's), and every
bad input refused in one line naming the option and the value, before the Monte Carlo starts,
with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_main

REPO = Path(__file__).resolve().parent.parent
MLP = str(REPO / "models" / "mlp.npz")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"



@pytest.fixture
def no_monte_carlo(monkeypatch):
    """Fail the test if a chip is evaluated: bad input must be refused before."""
    import golden.analog.evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("the Monte Carlo started before the bad input was refused")
    monkeypatch.setattr(golden.analog.evaluate, "evaluate_chips", refuse)


def drawn_figures(monkeypatch) -> list:
    """The figures the command line writes, captured on their way to the file."""
    from sim import plots
    figures = []
    write = plots.write_png

    def spy(fig, path):
        figures.append(fig)
        return write(fig, path)
    monkeypatch.setattr(plots, "write_png", spy)
    return figures


def check_png(path: Path) -> None:
    """A complete PNG of the documented size."""
    from PIL import Image

    from sim.plots import DPI, FIGSIZE_IN
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size == (round(FIGSIZE_IN[0] * DPI), round(FIGSIZE_IN[1] * DPI))
        assert "Software" not in img.info


# --- the figure --------------------------------------------------------------------------

def test_sweep_plot_draws_the_json_numbers(tmp_path, monkeypatch, capsys):
    """A sweep given out of order: one point per value, drawn in value order, at the JSON's
    mean, +-1 std and min-max; the ideal chip dashed at the JSON's ideal accuracy."""
    figures = drawn_figures(monkeypatch)
    png = tmp_path / "sweep.png"
    rc, out, err = run_main(["evaluate", "--model", MLP, "--device", "rram", "--chips", "2",
                             "--images", "40", "--sweep", "saf-rate=0.2,0", "--plot", str(png),
                             "--json"], capsys)
    assert rc == 0, err
    record = json.loads(out)
    assert record["plot"] == str(png)
    assert sorted(os.listdir(tmp_path)) == ["sweep.png"]          # no temporary file left
    check_png(png)
    rows = {row["value"]: row for row in record["results"]}
    assert len(rows) == 2

    (fig,) = figures
    ax = fig.axes[0]
    (curve,) = [c for c in ax.containers if c.get_label() == "device rram"]
    data_line, _, (bars,) = curve
    x, y = list(data_line.get_xdata()), list(data_line.get_ydata())
    assert x == sorted(rows) == [0, 0.2]
    assert y == pytest.approx([100 * rows[v]["mean"] for v in x], rel=1e-12)
    for v, seg in zip(x, bars.get_segments()):
        assert seg[:, 0].tolist() == [v, v]
        assert seg[:, 1].tolist() == pytest.approx(
            [100 * (rows[v]["mean"] - rows[v]["std"]), 100 * (rows[v]["mean"] + rows[v]["std"])],
            rel=1e-12)
    (band,) = [c for c in ax.collections if c.get_gid() == "device rram:range"]
    for v, seg in zip(x, band.get_segments()):
        assert seg[:, 1].tolist() == pytest.approx([100 * rows[v]["min"], 100 * rows[v]["max"]],
                                                   rel=1e-12)
    (ideal,) = [line for line in ax.lines if line.get_gid() == "ideal"]
    assert list(ideal.get_ydata()) == pytest.approx([100 * rows[0]["ideal_accuracy"]] * 2)
    assert ax.get_xscale() == "linear"
    assert "stuck-at fault rate (fraction of cells)" == ax.get_xlabel()
    assert ax.get_title() == "mlp.npz: 2 chips per point, 40 images, mean ±1 std"

    # the same figure gives the same bytes (no version or date in the PNG)
    from sim.plots import write_png
    assert write_png(fig, tmp_path / "again.png").read_bytes() == png.read_bytes()


def test_chip_plot_without_sweep_in_a_fresh_process(tmp_path):
    """The entry point run headless, with an interactive backend asked for by the
    environment: the Agg canvas is used regardless (one chip: a spread of one, std 0)."""
    png = tmp_path / "chips.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    r = subprocess.run([sys.executable, "-m", "sim.cli", "evaluate", "--model", MLP,
                        "--device", "rram", "--chips", "1", "--images", "20", "--seed", "5",
                        "--plot", str(png)], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"plot: {png}"
    assert sorted(os.listdir(tmp_path)) == ["chips.png"]
    check_png(png)


def test_chip_plot_draws_each_chip(tmp_path, monkeypatch, capsys):
    figures = drawn_figures(monkeypatch)
    png = tmp_path / "chips.png"
    rc, out, err = run_main(["evaluate", "--model", MLP, "--device", "rram", "--chips", "2",
                             "--images", "40", "--seed", "5", "--plot", str(png), "--json"],
                            capsys)
    assert rc == 0, err
    (row,) = json.loads(out)["results"]
    ax = figures[0].axes[0]
    (dots,) = [line for line in ax.lines if line.get_gid() == "device rram:chips"]
    assert list(dots.get_xdata()) == [5, 6]                   # the chips' programming seeds
    assert list(dots.get_ydata()) == pytest.approx([100 * a for a in row["accuracies"]],
                                                   rel=1e-12)
    (mean,) = [line for line in ax.lines if line.get_gid() == "device rram:mean"]
    assert list(mean.get_ydata()) == pytest.approx([100 * row["mean"]] * 2, rel=1e-12)
    (ideal,) = [line for line in ax.lines if line.get_gid() == "ideal"]
    assert list(ideal.get_ydata()) == pytest.approx([100 * row["ideal_accuracy"]] * 2)


@pytest.mark.parametrize("values, scale", [
    ((0, 0.1, 0.2), ("linear", {})),
    ((1, 50), ("linear", {})),                            # under two decades
    ((1, 10, 100), ("log", {})),
    ((20, 1e3, 1e5), ("log", {})),                        # drift times
    ((0, 1e-3, 1e-2, 0.1), ("symlog", {"linthresh": 1e-3})),  # stuck rates including 0
    ((0, 1e-3), ("linear", {})),
])
def test_x_axis_is_logarithmic_from_two_decades(values, scale):
    from sim.plots import AccuracySweep, SweepSeries, sweep_figure, x_scale
    assert x_scale(values) == scale
    n = len(values)
    sweep = AccuracySweep("x (unit)", values, [SweepSeries("a", [90] * n, [1] * n, [89] * n,
                                                           [91] * n)], [95] * n, "m", 2, 10)
    assert sweep_figure(sweep).axes[0].get_xscale() == scale[0]


def test_several_series_and_their_checks():
    from sim.plots import AccuracySweep, SweepSeries, sweep_figure
    a = SweepSeries("as programmed", [90, 80], [1, 2], [89, 77], [91, 82])
    b = SweepSeries("corrected", [95, 93], [1, 1], [94, 92], [96, 94])
    ax = sweep_figure(AccuracySweep("r (ohm)", [0, 1], [a, b], [97, 97], "m", 2, 10)).axes[0]
    assert [c.get_label() for c in ax.containers] == ["as programmed", "corrected"]
    with pytest.raises(ValueError, match="series labels must be distinct"):
        AccuracySweep("r (ohm)", [0, 1], [a, a], [97, 97], "m", 2, 10)
    with pytest.raises(ValueError, match="values must be distinct, not 1.0 twice"):
        AccuracySweep("r (ohm)", [1, 1], [a], [97, 97], "m", 2, 10)
    with pytest.raises(ValueError, match="'corrected' has 2 entries for 3 values"):
        AccuracySweep("r (ohm)", [0, 1, 2], [b], [97] * 3, "m", 2, 10)
    with pytest.raises(ValueError, match="mean_pct must be finite numbers, not nan"):
        SweepSeries("x", [float("nan")], [1], [1], [1])


def test_the_command_line_starts_without_matplotlib():
    """matplotlib is imported only for --plot: a run that reads the model and the test set
    (then refuses --images) has not loaded it."""
    code = ("import sys; from sim.cli import main; "
            f"rc = main(['evaluate', '--model', {MLP!r}, '--chips', '1', '--images', '20000']); "
            "print(rc, 'matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.stdout.split() == ["2", "False"], r.stdout + r.stderr


# --- bad input ---------------------------------------------------------------------------

# (arguments after --model, then what the one error line must contain: the option and value)
BAD = [
    (["--chips=0"], ["--chips", "0"]),
    (["--chips=-3"], ["--chips", "-3"]),
    (["--chips=2.5"], ["--chips", "2.5"]),
    (["--chips=two"], ["--chips", "two"]),
    (["--images=0"], ["--images", "0"]),
    (["--images=10001"], ["--images 10001", "10000 MNIST test images"]),
    (["--variation=nan"], ["--variation", "nan"]),
    (["--variation=inf"], ["--variation", "inf"]),
    (["--variation=-0.1"], ["--variation", "-0.1"]),
    (["--saf-rate=nan"], ["--saf-rate", "nan"]),
    (["--saf-rate=-inf"], ["--saf-rate", "-inf"]),
    (["--saf-rate=-0.01"], ["--saf-rate", "-0.01"]),
    (["--saf-rate=1.5"], ["--saf-rate", "1.5", "[0, 1]"]),
    (["--r-wire=nan"], ["--r-wire", "nan"]),
    (["--r-wire=inf"], ["--r-wire", "inf"]),
    (["--r-wire=-1"], ["--r-wire", "-1", "ohms"]),
    (["--drift-s=nan"], ["--drift-s", "nan"]),
    (["--drift-s=inf"], ["--drift-s", "inf"]),
    (["--drift-s=-5"], ["--drift-s", "-5"]),
    (["--drift-s=0"], ["--drift-s", "0"]),
    (["--drift-s=5"], ["--drift-s 5", "drift t0 (20 s)"]),
    (["--adc-bits=0"], ["--adc-bits", "0"]),
    (["--adc-bits=4.5"], ["--adc-bits", "4.5"]),
    (["--adc-bits=64"], ["--adc-bits 64", "2..24"]),
    (["--sweep=temperature=1,2"], ["--sweep", "unknown parameter 'temperature'", "saf-rate"]),
    (["--sweep=saf-rate="], ["--sweep 'saf-rate='", "no values"]),
    (["--sweep=saf-rate"], ["--sweep 'saf-rate'", "no values"]),
    (["--sweep=saf-rate=0,,0.1"], ["--sweep 'saf-rate=0,,0.1'", "not ''"]),
    (["--sweep=saf-rate=0,nan"], ["--sweep 'saf-rate=0,nan'", "not 'nan'"]),
    (["--sweep=r-wire=1,inf"], ["--sweep 'r-wire=1,inf'", "not 'inf'"]),
    (["--sweep=saf-rate=0,1.5"], ["--sweep 'saf-rate=0,1.5'", "[0, 1]", "not '1.5'"]),
    (["--sweep=variation=-0.1"], ["--sweep 'variation=-0.1'", "not '-0.1'"]),
    (["--sweep=drift-s=100,5"], ["--sweep drift-s=5", "drift t0 (20 s)"]),
    (["--sweep=adc-bits=4,2.5"], ["--sweep 'adc-bits=4,2.5'", "positive integer", "'2.5'"]),
    (["--sweep=adc-bits=4,40"], ["--sweep adc-bits=40", "2..24"]),
    (["--sweep=saf-rate=0,0.1,0.1"], ["--sweep 'saf-rate=0,0.1,0.1'", "0.1 is given twice"]),
    (["--sweep=r-wire=1,1.0"], ["--sweep 'r-wire=1,1.0'", "1 is given twice"]),
    (["--saf-rate=0.1", "--sweep=saf-rate=0,0.2"], ["--sweep 'saf-rate=0,0.2'",
                                                   "--saf-rate 0.1", "give one"]),
    (["--device=memristor"], ["--device", "memristor"]),
]


@pytest.mark.parametrize("args, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_before_any_work(args, expected, tmp_path, capsys,
                                               no_monte_carlo):
    png = tmp_path / "out.png"
    rc, out, err = run_main(["evaluate", "--model", MLP, "--chips", "2", "--images", "40",
                             "--plot", str(png), *args], capsys)
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mbnn"), err
    for text in expected:
        assert text in last, err
    assert "Traceback" not in err and out == ""
    assert os.listdir(tmp_path) == []                     # no plot, no temporary file


def _plot_paths(tmp_path: Path) -> dict:
    (tmp_path / "a_directory.png").mkdir()
    (tmp_path / "a_file").write_text("x")
    return {"directory": (str(tmp_path / "a_directory.png"), "not the directory"),
            "not png": (str(tmp_path / "accuracy.jpg"), "ending in .png"),
            "no extension": (str(tmp_path / "accuracy"), "ending in .png"),
            "parent missing": (str(tmp_path / "missing" / "a.png"), "is not a directory"),
            "parent is a file": (str(tmp_path / "a_file" / "a.png"), "is not a directory")}


@pytest.mark.parametrize("case", ["directory", "not png", "no extension", "parent missing",
                                  "parent is a file"])
def test_bad_plot_path_is_refused_before_any_work(case, tmp_path, capsys, no_monte_carlo):
    path, reason = _plot_paths(tmp_path)[case]
    before = sorted(os.listdir(tmp_path))
    rc, out, err = run_main(["evaluate", "--model", MLP, "--chips", "2", "--images", "40",
                             "--sweep", "saf-rate=0,0.1", "--plot", path], capsys)
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert "argument --plot" in last and path in last and reason in last, err
    assert sorted(os.listdir(tmp_path)) == before
    assert not (tmp_path / "missing").exists()


def test_plot_in_a_read_only_directory_is_refused(tmp_path, capsys, monkeypatch,
                                                  no_monte_carlo):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        # root may write anywhere: answer access() as for an unprivileged user
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw:
                            False if Path(p) == ro and mode & os.W_OK else real(p, mode, **kw))
    try:
        rc, out, err = run_main(["evaluate", "--model", MLP, "--chips", "2",
                                 "--plot", str(ro / "a.png")], capsys)
        assert rc == 2
        last = err.strip().splitlines()[-1]
        assert "argument --plot" in last and str(ro / "a.png") in last
        assert "is not writable" in last
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_an_interrupted_write_leaves_the_old_plot_and_no_temporary_file(tmp_path, monkeypatch):
    from sim.plots import AccuracySweep, SweepSeries, sweep_figure, write_png
    fig = sweep_figure(AccuracySweep("r (ohm)", [0, 1], [SweepSeries("a", [90, 80], [1, 2],
                                                                     [89, 77], [91, 82])],
                                     [97, 97], "m", 2, 10))
    png = tmp_path / "a.png"
    png.write_bytes(b"old")

    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_png(fig, png)
    assert os.listdir(tmp_path) == ["a.png"] and png.read_bytes() == b"old"


# --- sharding a Monte-Carlo sweep over CI runners --------------------------------------------

# 20 % stuck cells: a rate where the three chips differ (the 98.97 % MLP scores 0.99, 1.0 and
# 0.98 on these 100 images; at 5 % all three score 1.0), so the merge must place each chip
SHARDED = ["evaluate", "--model", MLP, "--device", "rram", "--chips", "3", "--images", "100",
           "--seed", "11", "--sweep", "saf-rate=0,0.2", "--json"]


def test_shards_merge_into_exactly_the_whole_run(tmp_path, capsys):
    """Two shards of a 3-chip, 2-point sweep, merged: every chip once, and the record equals
    the unsharded run's (per-chip accuracies, statistics, ideal accuracy), wall time aside."""
    rc, out, err = run_main(SHARDED, capsys)
    assert rc == 0, err
    whole = json.loads(out)
    files = []
    for i in (1, 2):
        rc, out, err = run_main(SHARDED + ["--shard", f"{i}/2"], capsys)
        assert rc == 0, err
        record = json.loads(out)
        assert record["shard"] == [i, 2]
        assert [r["chip_indices"] for r in record["results"]] == [list(range(i - 1, 3, 2))] * 2
        files.append(tmp_path / f"s{i}.json")
        files[-1].write_text(out)
    rc, out, err = run_main(["evaluate", "--json", "--merge", *map(str, files)], capsys)
    assert rc == 0, err
    merged = json.loads(out)
    for key in ("model", "images", "chips", "seed", "sweep", "calibration_images"):
        assert merged[key] == whole[key]
    assert len(merged["results"]) == 2
    for got, want in zip(merged["results"], whole["results"]):
        assert got == want, "the merged sweep point differs from the unsharded run's"
    assert len(set(whole["results"][1]["accuracies"])) > 1, "the chips do not differ"

    # a missing shard, an overlap and a shard of another run are refused in one line
    rc, _, err = run_main(["evaluate", "--merge", str(files[0])], capsys)
    assert rc == 2 and "shards 2/2 not given" in err
    rc, _, err = run_main(["evaluate", "--merge", str(files[0]), str(files[0]), str(files[1])],
                          capsys)
    assert rc == 2 and "shard 1/2 is also" in err
    other = json.loads(files[1].read_text())
    other["seed"] = 12
    (tmp_path / "other.json").write_text(json.dumps(other))
    rc, _, err = run_main(["evaluate", "--merge", str(files[0]), str(tmp_path / "other.json")],
                          capsys)
    assert rc == 2 and "seed 12 differs from 11" in err
    rc, _, err = run_main(["evaluate", "--merge", str(tmp_path)], capsys)
    assert rc == 2 and "is a directory, expected a JSON file" in err
    for junk in ("[1, 2]", '{"shard": [1, 2]}', '{"shard": [1, 2], "results": [null]}'):
        (tmp_path / "junk.json").write_text(junk)
        rc, _, err = run_main(["evaluate", "--merge", str(tmp_path / "junk.json")], capsys)
        assert rc == 2 and "not the --json record of `mbnn evaluate --shard`" in err, err


@pytest.mark.parametrize("extra, message", [
    (["--shard", "4/4"], "3 chips cannot fill 4 shards"),
    (["--shard", "0/2"], "--shard"),
    (["--shard", "1/2", "--plot", "x.png"], "--plot draws whole runs"),
])
def test_bad_shards_are_refused_before_the_monte_carlo(no_monte_carlo, capsys, extra, message):
    rc, _, err = run_main(SHARDED + extra, capsys)
    assert rc == 2 and message in err, err


def test_a_shard_without_json_and_merge_with_run_options_are_refused(no_monte_carlo, capsys):
    argv = [a for a in SHARDED if a != "--json"] + ["--shard", "1/2"]
    rc, _, err = run_main(argv, capsys)
    assert rc == 2 and "add --json" in err
    rc, _, err = run_main(["evaluate", "--merge", "a.json", "--chips", "3"], capsys)
    assert rc == 2 and "--chips belongs to the shards' own runs" in err
