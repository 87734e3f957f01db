"""Class names to classes, for rebuilding layers and models from their configs.

The registry holds every class exported by :mod:`rnnkit.layers`, the model classes and
``InputLayer``, plus classes decorated with :func:`register_serializable`; ``custom_objects``
passed to a call adds or overrides entries for that call only. Nothing is imported by a name read
from a file: an unknown name is an error.
"""

from __future__ import annotations

from torch import nn

_REGISTERED: dict[str, type] = {}


def register_serializable(cls: type) -> type:
    """Class decorator: let ``load_model``/``from_config`` find ``cls`` by its name."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"cls: expected a Layer or Model class, got {cls!r}")
    _REGISTERED[cls.__name__] = cls
    return cls


def known_classes(custom_objects: dict | None = None) -> dict[str, type]:
    import rnnkit.layers
    from rnnkit.models.functional import Functional
    from rnnkit.models.model import Model
    from rnnkit.models.sequential import Sequential
    from rnnkit.models.symbolic import InputLayer

    classes = {name: getattr(rnnkit.layers, name) for name in rnnkit.layers.__all__}
    classes = {name: cls for name, cls in classes.items()
               if isinstance(cls, type) and issubclass(cls, nn.Module)}
    classes.update(InputLayer=InputLayer, Functional=Functional, Model=Model,
                   Sequential=Sequential)
    classes.update(_REGISTERED)
    classes.update(custom_objects or {})
    return classes


def serialize_layer(layer: nn.Module) -> dict:
    """``{"class_name", "config"}`` for ``layer`` (its config must be JSON-serializable)."""
    if not hasattr(layer, "get_config"):
        raise TypeError(f"layer: {type(layer).__name__} has no get_config(); only rnnkit layers "
                        "and models can be saved with the architecture")
    from rnnkit.models.functional import Functional

    class_name = "Functional" if isinstance(layer, Functional) else type(layer).__name__
    return {"class_name": class_name, "config": layer.get_config()}


def deserialize_layer(spec: dict, custom_objects: dict | None = None) -> nn.Module:
    """Rebuild a layer or model from ``{"class_name", "config"}``."""
    if not isinstance(spec, dict) or "class_name" not in spec or "config" not in spec:
        raise ValueError(f"config: expected a layer entry with 'class_name' and 'config', "
                         f"got {spec!r}")
    classes = known_classes(custom_objects)
    cls = classes.get(spec["class_name"])
    if cls is None:
        raise ValueError(f"config: unknown layer class {spec['class_name']!r}; pass it as "
                         f"custom_objects={{{spec['class_name']!r}: cls}} or decorate it with "
                         "rnnkit.models.register_serializable")
    from rnnkit.models.model import Model

    config = spec["config"]
    if isinstance(cls, type) and issubclass(cls, Model):
        return cls.from_config(config, custom_objects=custom_objects)
    try:
        return cls.from_config(config)
    except TypeError as error:
        raise ValueError(f"config: cannot rebuild {spec['class_name']} "
                         f"{config.get('name', '')!r} from its config ({error}); its "
                         "get_config() must return every constructor argument") from error

