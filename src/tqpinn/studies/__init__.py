"""Measurements on top of the library: benchmarks, the reproduction study, the PRS experiment
and the hardware comparison. Nothing below this package imports it."""
