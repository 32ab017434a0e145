"""The pictures a run leaves, checked by what they draw rather than by their pixels."""

import numpy as np
import pytest
from matplotlib.axes import Axes
from mpl_toolkits.mplot3d import Axes3D

from flax_resnets.runs import plots
from flax_resnets.runs.paper import paper_runs


@pytest.fixture
def drawn(monkeypatch):
    """The figures ``plots`` would save, by the name of their file."""
    figures = {}

    def keep(figure, path):
        figures[path.name] = figure
        return path

    monkeypatch.setattr(plots, "save", keep)
    return figures


def lines_by_label(figure):
    return {line.get_label(): line for axes in figure.axes for line in axes.get_lines()}


def test_a_table1_cells_curves_have_the_papers_logged_run_dashed_beside_them(tmp_path, drawn):
    records = [
        {"epoch": e, "train_loss": 2 / e, "train_accuracy": e / 10, "val_loss": 2 / e, "val_accuracy": e / 10}
        for e in (1, 2)
    ]
    plots.plot_curves(records, "run", tmp_path / "curves.png", paper_cell="cifar10_vgg19")
    lines = lines_by_label(drawn["curves.png"])
    paper = paper_runs()["cifar10_vgg19"]["epochs"]
    training = lines["paper, training"]
    assert training.get_linestyle() == "--" and list(training.get_xdata()) == list(range(1, 21))
    np.testing.assert_allclose(training.get_ydata(), [e["train_acc"] / 100 for e in paper])  # 10.48% first
    assert "paper, validation" in lines and "(dashed: the paper's logged cifar10_vgg19)" in str(
        drawn["curves.png"]._suptitle.get_text()
    )
    plots.plot_curves(records, "run", tmp_path / "other.png")
    assert not any(label.startswith("paper") for label in lines_by_label(drawn["other.png"]))


def test_landscape_surfaces_are_the_whole_loss_on_a_log_axis_and_contours_stop_at_ten_times_the_centre(
    tmp_path, drawn, monkeypatch
):
    calls = {}
    for cls, name in ((Axes, "contour"), (Axes3D, "plot_surface")):
        original = getattr(cls, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] = (args, kwargs)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)
    x = np.linspace(-1, 1, 5)
    loss = 1.0 + 400 * (x[:, None] ** 2 + x[None, :] ** 2)  # 1 at the centre, 801 in the corners
    plots.plot_landscapes([{"name": "run", "x": x, "y": x, "loss": loss}], tmp_path / "landscape.png")
    heights = calls["plot_surface"][0][2]
    np.testing.assert_allclose(heights, np.log10(loss))  # whole: no flat cap, no saw-teeth
    levels = calls["contour"][1]["levels"]
    assert levels[0] == pytest.approx(1.0) and levels[-1] == pytest.approx(10.0)


def test_a_run_is_named_by_its_folder_and_a_multi_seed_result_by_its_spread_and_members_steps():
    from flax_resnets.runs.summary import data_label, result_line

    assert data_label({"dataset": "cifar10", "data_dir": None}) == "cifar10"
    folder = {"dataset": "image_folder", "data_dir": "/data/fashion_mnist/"}
    assert data_label(folder) == "fashion_mnist (image folder)"
    assert data_label({"dataset": "image_folder", "data_dir": "x/cifar10.npz"}) == "cifar10 (image folder)"
    report = {
        "test_accuracy": 0.8577,
        "test_accuracy_std": 0.0025,
        "test_loss": 0.41,
        "num_examples": 100,
        "checkpoint_step": [300, 200],
        "seeds": [{"seed": 0, "checkpoint_step": 300}, {"seed": 1, "checkpoint_step": 200}],
    }
    config = {"model": "resnet8", "dataset": "image_folder", "data_dir": "/data/fashion_mnist"}
    assert result_line(report, config) == (
        "resnet8 on fashion_mnist (image folder): test accuracy 85.77% ± 0.25% over 2 seeds, loss 0.4100 "
        "over 100 images (checkpoints at steps 300 (seed 0), 200 (seed 1))"
    )
    one = {**report, "checkpoint_step": 300, "seeds": report["seeds"][:1]}
    assert result_line(one, {**config, "dataset": "cifar10"}).endswith(
        "on cifar10: test accuracy 85.77%, loss 0.4100 over 100 images (checkpoint at step 300)"
    )
