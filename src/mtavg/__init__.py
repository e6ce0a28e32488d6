"""mtavg — evaluate audio-video generation (MTAVG-Bench 2.0, AVGen-Bench, AVBench)."""

__version__ = "0.5.0"
