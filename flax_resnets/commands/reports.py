"""``python -m flax_resnets reports WORKDIR...``: one table row per run; with ``--plots``, redraw
each run's curves.png and confusion.png (``--paper_cell=CELL``: the paper's logged curves of that
Table 1 cell beside the run's, for any run; by default a cell's config draws its own)."""

from __future__ import annotations

from pathlib import Path

from flax_resnets.cli import command_parser, user_path
from flax_resnets.config import TABLE1_CELLS
from flax_resnets.runs.plots import write_plots
from flax_resnets.runs.summary import distinct_names, format_table, run_summary
from flax_resnets.runs.workdir import read_run


def main(argv: list[str]) -> int:
    parser = command_parser("reports", __doc__)
    add = parser.add_argument
    add("workdirs", nargs="+", type=user_path)
    add("--plots", action="store_true", help="redraw curves.png and confusion.png")
    add("--paper_cell", choices=sorted(TABLE1_CELLS), help="with --plots: this cell's logged curves too")
    args = parser.parse_args(argv)
    runs = [read_run(workdir) for workdir in args.workdirs]
    if args.plots:
        for workdir in args.workdirs:
            for path in write_plots(Path(workdir), args.paper_cell):
                print(f"wrote {path}")
        return 0
    names = distinct_names(args.workdirs)
    print(format_table([run_summary(run, name) for run, name in zip(runs, names, strict=True)]))
    return 0
