"""Models by name: ``unsup.create("pixelcnn", data=spec, preset="course", hidden=32)``."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

from unsup.data.base import Dataset, DataSpec
from unsup.errors import ConfigError
from unsup.models.base import LikelihoodModel, Model, Phase
from unsup.registry import Registry

MODELS: Registry[type[Model]] = Registry("model")

def _import_models() -> None:
    """Import every module of the family packages, so that each ``@register`` has run: a new model
    module is found where it is put, with no list to update."""
    import unsup.models as package

    for info in pkgutil.walk_packages(package.__path__, "unsup.models."):
        importlib.import_module(info.name)


def register(name: str, summary: str = "", presets: dict[str, dict[str, Any]] | None = None):
    """Class decorator: register a :class:`Model` subclass under ``name``.

    Args:
        name: public name (``unsup train NAME``).
        summary: one line for ``unsup list`` (default: first docstring line).
        presets: named option sets, e.g. ``{"paper": {...}}`` for the published configuration.
    """
    return MODELS.register(name, summary, presets=presets or {})


def config_for(name: str, preset: str | None = None, **options: Any) -> Any:
    """Build the config dataclass of model ``name`` from a preset and overrides."""
    _import_models()
    entry = MODELS.entry(name)
    cls = entry.obj.Config
    values: dict[str, Any] = {}
    if preset is not None:
        presets = entry.meta["presets"]
        if preset not in presets:
            raise ConfigError(f"model {name!r} has no preset {preset!r}; presets: "
                              f"{', '.join(presets) or 'none'}")
        values.update(presets[preset])
    values.update(options)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"model {name!r} has no option {', '.join(unknown)}; options: "
                          f"{', '.join(sorted(fields))}")
    return cls(**values)


def create(name: str, data: DataSpec | Dataset, preset: str | None = None, **options: Any) -> Model:
    """Build model ``name`` for ``data`` (a :class:`DataSpec` or a dataset).

    When ``data`` is the training set, the model's :meth:`~Model.fit_config` fills in options that
    depend on it (a memory bank's rows) and :meth:`~Model.prepare` takes what the model keeps of
    its statistics (word counts).

    Raises:
        ConfigError: unknown model, preset or option, or data the model cannot handle.
    """
    spec = data.spec if isinstance(data, Dataset) else data
    config = config_for(name, preset, **options)
    cls = MODELS.get(name)
    if isinstance(data, Dataset):
        cls.fit_config(config, data)  # options that depend on the training set (a bank's rows)
    model = cls(spec, config)
    if isinstance(data, Dataset):
        model.prepare(data)  # statistics of the training data the model keeps (word counts)
    return model


def names() -> list[str]:
    _import_models()
    return MODELS.names()


__all__ = ["MODELS", "LikelihoodModel", "Model", "Phase", "config_for", "create", "names", "register"]
