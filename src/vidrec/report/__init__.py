"""``vidrec report``: one self-contained HTML file judging a trained model on a split, with figures.

``inputs`` reads the model, the split and any ground truth; ``figures`` computes what each figure
shows from one evaluation pass; ``render`` draws them; ``page`` assembles the file.
"""

from vidrec.report.inputs import Evaluation, ReportInputs, evaluate, load_inputs
from vidrec.report.page import SECTIONS, write_report

__all__ = ["SECTIONS", "Evaluation", "ReportInputs", "evaluate", "load_inputs", "write_report"]
