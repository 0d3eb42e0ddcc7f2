"""`@app.task(pydantic=True)`: arguments and results as pydantic models, as Celery 5.5+.

A message carries JSON, so a model argument travels as a dict. With `pydantic=True`
each argument whose annotation is a `BaseModel` subclass is validated into that model
(`model_validate`, with `pydantic_strict` and `pydantic_context`), and a returned
model whose class the return annotation names is dumped back to plain data
(`model_dump(**pydantic_dump_kwargs)`, JSON mode by default) before it is stored.
Other arguments pass as they are. Direct calls go through the same conversions.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from qmulti.exceptions import ConfigError


def _pydantic() -> Any:
    try:
        import pydantic
    except ImportError:
        raise ConfigError("a task with pydantic=True needs pydantic: pip install 'qmulti[pydantic]'"
                          ) from None
    return pydantic


def wrap(fun: Callable[..., Any], name: str, strict: bool = False, context: Any = None,
         dump_kwargs: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """`fun` with its model arguments validated and its model result dumped."""
    base_model = _pydantic().BaseModel
    signature = inspect.signature(fun)
    try:
        hints = typing.get_type_hints(fun)
    except Exception:  # an annotation that does not resolve: use them as written
        hints = {k: p.annotation for k, p in signature.parameters.items()}
        hints["return"] = signature.return_annotation

    def is_model(annotation: Any) -> bool:
        return isinstance(annotation, type) and issubclass(annotation, base_model)

    models = {k: v for k, v in hints.items() if k != "return" and is_model(v)}
    returns = hints.get("return")
    dump = {"mode": "json", **(dict(dump_kwargs) if dump_kwargs else {})}

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for key, model in models.items():
            if key in bound.arguments and not isinstance(bound.arguments[key], model):
                bound.arguments[key] = model.model_validate(bound.arguments[key],
                                                            strict=strict, context=context)
        value = fun(*bound.args, **bound.kwargs)
        if is_model(returns) and isinstance(value, returns):
            return value.model_dump(**dump)
        return value

    wrapper.__qmulti_pydantic__ = name  # type: ignore[attr-defined]
    return wrapper
