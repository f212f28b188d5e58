"""A simulated video platform with ground truth: vidrec's built-in data set.

``simulate(SimulatorConfig(...), out_dir)`` writes the canonical tables plus the truth
behind them; ``GroundTruth.load(out_dir)`` answers what any user would do with any video.
"""

from vidrec.data.simulator.config import SimulatorConfig
from vidrec.data.simulator.engine import simulate
from vidrec.data.simulator.groundtruth import GroundTruth

__all__ = ["GroundTruth", "SimulatorConfig", "simulate"]
