"""unsup: deep unsupervised learning in PyTorch.

>>> import unsup
>>> train = unsup.data.load("digits", "train", "binary")
>>> model = unsup.create("made", data=train)
>>> model.loss(train.batch(torch.arange(8)))["bpd"]
"""

from unsup import data
from unsup.errors import UnsupError
from unsup.models import create

__version__ = "0.1.0"
__all__ = ["UnsupError", "__version__", "create", "data"]
