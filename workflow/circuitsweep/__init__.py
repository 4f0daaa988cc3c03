"""circuitsweep: when do attention-head circuits form during pretraining?"""

__version__ = "0.1.0"
