"""Executed notebooks that diff cleanly: final progress-bar states, no volatile metadata."""

from __future__ import annotations

import nbformat

from ssae_utils.executed import final_state, tidy


def test_a_progress_bar_keeps_only_its_final_state_and_other_lines_stay():
    text = "loading\n\rtrain:   0%|  | 0/60\rtrain:  50%|# | 30/60\rtrain: 100%|##| 60/60 [00:12<00:00]\ndone\n"
    assert final_state(text) == "loading\ntrain: 100%|##| 60/60 [00:12<00:00]\ndone\n"
    assert final_state("a\x1b[A\rb\n") == "b\n"
    # a bar with leave=False is cleared on close ("\r" + blanks + "\r"): nothing of it stays
    assert final_state("\reval:   0%| | 0/3\r          \r\rnext: 100%|#| 2/2\n") == "next: 100%|#| 2/2\n"
    assert final_state("\reval:  33%| | 1/3\r          \r") == ""


def test_tidy_drops_timings_and_absolute_paths_but_keeps_parameters():
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"start_time": "2026", "end_time": "2026", "duration": 3.0, "parameters": {"profile": "smoke"},
                                "input_path": "/abs/notebooks/03_finetune.ipynb", "output_path": "/abs/runs/smoke/03_finetune.ipynb"}
    cell = nbformat.v4.new_code_cell("x")
    cell.metadata.update({"execution": {"iopub.status.busy": "2026"}, "papermill": {"duration": 1.0, "status": "completed"}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="\r0%\r100%\n")]
    nb.cells = [cell]
    tidy(nb)
    assert nb.metadata.papermill == {"parameters": {"profile": "smoke"}, "input_path": "03_finetune.ipynb",
                                     "output_path": "03_finetune.ipynb"}
    assert "execution" not in cell.metadata and cell.metadata.papermill == {"status": "completed"}
    assert cell.outputs[0]["text"] == "100%\n"


def test_chunks_of_one_bar_saved_as_separate_outputs_collapse_to_its_final_state():
    stream = lambda name, text: nbformat.v4.new_output("stream", name=name, text=text)  # noqa: E731
    widget = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                          "text/plain": "Loading weights:   0%|          | 0/236"})
    table = nbformat.v4.new_output("display_data", data={"text/plain": "a table"})
    outputs = [widget, stream("stderr", "\rtrain:   0%|  | 0/60"), stream("stderr", "\rtrain: 100%|##| 60/60"),
               stream("stderr", "\n"), stream("stderr", ""), stream("stdout", "picked lr 1e-3\n"), table,
               stream("stderr", "\reval:   0%| | 0/3"), stream("stderr", "\reval: 100%|#| 3/3\n")]
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = outputs
    nb = nbformat.v4.new_notebook(cells=[cell])
    tidy(nb)
    assert [(o["output_type"], o.get("text")) for o in cell.outputs] == [
        ("stream", "train: 100%|##| 60/60\n"), ("stream", "picked lr 1e-3\n"), ("display_data", None),
        ("stream", "eval: 100%|#| 3/3\n")]
