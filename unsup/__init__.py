"""unsup: deep unsupervised learning in PyTorch.

>>> import unsup
>>> train = unsup.data.load("digits", "train", "binary")
>>> model = unsup.create("made", data=train)
>>> model.loss(train.batch(torch.arange(8)))["bpd"]
"""

from unsup import data, train  # train registers the data sources that read trained runs
from unsup.errors import UnsupError
from unsup.models import create
from unsup.version import __version__

__all__ = ["UnsupError", "__version__", "create", "data", "train"]
