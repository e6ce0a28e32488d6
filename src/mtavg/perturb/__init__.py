"""Controlled perturbations of real clips (AVBench): audio shifts, speed and pitch changes, noise,
filters, dropouts, soundtrack swaps, frozen and stuttering pictures, colour casts, blur.

``perturb_clip`` makes one negative with explicit parameters; ``mtavg.perturb.build`` makes a whole
positive/negative pair dataset by a published or custom type mix.
"""

from mtavg.perturb.apply import IDENTITY, perturb_clip, sidecar_path
from mtavg.perturb.catalogue import CATALOGUE, LEVELS, NotApplicable, PerturbationSpec, get_spec
from mtavg.perturb.io import AudioTrack, VideoOp, read_audio, write_clip

__all__ = [
    "CATALOGUE", "IDENTITY", "LEVELS", "AudioTrack", "NotApplicable", "PerturbationSpec",
    "VideoOp", "get_spec", "perturb_clip", "read_audio", "sidecar_path", "write_clip",
]
