"""The model and the code that serves it: the default handler, or the user's ``code/inference.py``.

User modules follow the sagemaker-inference-toolkit's contract, so existing handlers run unchanged:

- ``model_fn(model_dir)`` returns the model (default: load ``model.joblib`` or ``model.pkl``);
- ``input_fn(input_data, content_type)`` gets the raw body (bytes) and the bare media type (``text/csv``,
  without ``; charset=...``); default: this server's JSON/CSV/NPY decoders;
- ``predict_fn(data, model)``; default: ``model.predict(data)`` (a 1-D input is treated as one row; for a
  scikit-learn forest, the same sum of its trees without joblib's dispatch: `forests`);
- ``output_fn(prediction, accept)`` returns the body, or ``(body, content_type)``; default: JSON/CSV/NPY
  encoders;
- or ``transform_fn(model, input_data, content_type, accept)`` instead of the three above.

As in the toolkit, a function that takes one more parameter than listed also receives a `Context` last.
Exceptions with an integer ``status_code`` attribute (the toolkit's own errors have one) keep that status;
others from ``input_fn`` answer 400, from the rest 500. The handler is built once, in the supervisor, before
the workers are forked, so every worker shares the one loaded model.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .content_types import CSV, JSON, NPY, MediaType, negotiate, preferred
from .errors import BadRequest, ModelError, ServeError, UnsupportedMediaType

__all__ = ["MODEL_FILES", "Context", "Handler", "LoadError", "load_handler"]

log = logging.getLogger("sagemaker_serve.handler")

#: Files the default handler loads, first match wins.
MODEL_FILES = ("model.joblib", "model.pkl")
_OFFERS = (JSON, CSV, NPY)


class LoadError(RuntimeError):
    """The model or the user's code could not be loaded; the message says what to fix."""


@dataclass(slots=True)
class Context:
    """Per-request context for handlers that ask for it (a subset of the toolkit's MMS context)."""

    request_headers: Mapping[str, str]
    model_dir: str
    request_id: str
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def system_properties(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "gpu_id": None}

    @property
    def custom_attributes(self) -> str | None:
        return self.request_headers.get("x-amzn-sagemaker-custom-attributes")

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return dict(self.request_headers)

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.response_headers[key.lower()] = value


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and 400 <= status <= 599 else None


def _user_error(stage: str, exc: Exception, default: type[ServeError]) -> ServeError:
    """A short caller-facing error for an exception raised by user (or model) code."""
    message = f"{stage} failed: {type(exc).__name__}: {exc}"
    status = _status_of(exc)
    if status is None:
        return default(message)
    err = ServeError(message)
    err.status = status
    err.code = default.code if status == default.status else "handler_error"
    return err


def _as_body(result: Any, fallback_type: str) -> tuple[bytes, str]:
    """Normalise an ``output_fn``/``transform_fn`` result: body or (body, content_type)."""
    content_type = fallback_type
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, content_type = result
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), content_type
    if isinstance(result, str):
        return result.encode(), content_type
    if isinstance(result, list) and len(result) == 1 and isinstance(result[0], (bytes, str)):
        # Toolkit-era handlers sometimes return the MMS-style one-element list.
        return _as_body((result[0], content_type), content_type)
    from .codecs import encode_json  # noqa: PLC0415 - keeps numpy out of the supervisor's first import

    return encode_json(result), JSON


class Handler:
    """Serves one loaded model. Methods that run model code are called on the worker's model thread."""

    def __init__(
        self,
        model: Any,
        model_dir: Path,
        module: ModuleType | None,
        default_accept: str | None,
        *,
        forest_fast_path: bool = True,
    ) -> None:
        self.model = model
        self.model_dir = model_dir
        self.module = module
        self._default_accept = default_accept
        self.input_fn = self._user_fn("input_fn", 2)
        self.predict_fn = self._user_fn("predict_fn", 2)
        self.output_fn = self._user_fn("output_fn", 2)
        self.transform_fn = self._user_fn("transform_fn", 4)
        self.custom_io = bool(self.transform_fn or self.input_fn or self.output_fn)
        #: The default pipeline (our codecs, ``model.predict``) may run inline on the event loop when it is
        #: measured to be fast; user code always runs on the model thread (see `runner`).
        self.inline_safe = not self.custom_io and self.predict_fn is None
        if (
            self.predict_fn is None
            and self.transform_fn is None
            and not callable(getattr(model, "predict", None))
        ):
            raise LoadError(
                f"the model ({type(model).__name__}) has no predict() method; add code/inference.py with a "
                "predict_fn(data, model) or transform_fn"
            )
        #: What the default predict calls: ``model.predict``, or for a scikit-learn forest the same sum of
        #: its trees without joblib's per-tree dispatch (`forests`; identical results, checked at load).
        self._model_predict: Callable[[Any], Any] = getattr(model, "predict", None) or _no_predict
        if forest_fast_path and self.predict_fn is None and self.transform_fn is None:
            from .forests import forest_predictor  # noqa: PLC0415

            self._model_predict = forest_predictor(model) or self._model_predict

    def _user_fn(self, name: str, arity: int) -> Callable[..., Any] | None:
        fn = getattr(self.module, name, None) if self.module else None
        if fn is None:
            return None
        if not callable(fn):
            raise LoadError(f"{name} in {self.module.__name__ if self.module else '?'} is not a function")
        try:
            params = len(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            params = arity
        if params not in (arity, arity + 1):
            raise LoadError(
                f"{name} takes {params} parameters; the toolkit contract has {arity} (+1 for context)"
            )
        wants_context = params == arity + 1

        def call(*args: Any, context: Context) -> Any:
            return fn(*args, context) if wants_context else fn(*args)

        return call

    # ------------------------------------------------------------ negotiation (event loop, before the body)
    @property
    def batchable(self) -> bool:
        """Micro-batching merges decoded arrays, so it needs our decoders and encoders (no custom I/O)."""
        return not self.custom_io

    def default_type(self, media: MediaType) -> str:
        if self._default_accept:
            return self._default_accept
        return media.essence if media.essence in _OFFERS else JSON

    def check_content_type(self, media: MediaType) -> None:
        if self.input_fn is None and self.transform_fn is None:
            from .codecs import DECODERS  # noqa: PLC0415

            if media.essence not in DECODERS:
                raise UnsupportedMediaType(
                    f"unsupported Content-Type {media.essence!r}; send one of {', '.join(DECODERS)}"
                )

    def response_type(self, accept: str | None, media: MediaType) -> str:
        """The media type to answer with (406 if none fits). User output code gets one concrete type."""
        default = self.default_type(media)
        if self.output_fn is not None or self.transform_fn is not None:
            return preferred(accept, default)
        return negotiate(accept, _OFFERS, default if default in _OFFERS else JSON)

    # ---------------------------------------------------------------- model thread
    def decode(self, body: bytes, media: MediaType) -> Any:
        from .codecs import decode  # noqa: PLC0415

        return decode(body, media)

    def predict(self, data: Any, context: Context | None = None) -> Any:
        if self.predict_fn is None:
            return self._default_predict(data, context)
        try:
            return self.predict_fn(data, self.model, context=context)
        except ServeError:
            raise
        except Exception as exc:
            log.exception("predict failed (request %s)", context.request_id if context else "batch")
            raise _user_error("predict", exc, ModelError) from exc

    def _default_predict(self, data: Any, context: Context | None) -> Any:
        """``model.predict`` with the input checked first. scikit-learn validates its input by raising
        ValueError/TypeError (wrong width, NaN/inf, wrong dtype or rank): that is the caller's data, so it
        answers 400 with scikit-learn's own explanation; anything else the model raises is a 500."""
        if getattr(data, "ndim", 2) == 1:
            data = data.reshape(1, -1)
        width = getattr(self.model, "n_features_in_", None)
        if isinstance(width, int) and getattr(data, "ndim", 0) == 2 and data.shape[1] != width:
            raise BadRequest(f"each row must have {width} values (the model's features); got {data.shape[1]}")
        try:
            return self._model_predict(data)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"the model rejected the input: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            log.exception("predict failed (request %s)", context.request_id if context else "batch")
            raise _user_error("predict", exc, ModelError) from exc

    def warm_up(self) -> bool:
        """One throw-away prediction in the supervisor, for the default predict on a model that declares its
        input width (scikit-learn's ``n_features_in_``). The first ``predict`` of a process pays one-off
        initialisation (~10 ms for a scikit-learn forest); paying it before the fork means no worker's first
        request does, and the state it creates is shared. True if it ran."""
        width = getattr(self.model, "n_features_in_", None)
        if self.predict_fn is not None or not isinstance(width, int) or width <= 0:
            return False
        import numpy as np  # noqa: PLC0415

        try:
            self._model_predict(np.zeros((1, width)))
        except Exception:  # a model that cannot predict zeros is still servable
            log.debug("warm-up prediction failed", exc_info=True)
            return False
        return True

    def encode(self, prediction: Any, accept: str) -> bytes:
        from .codecs import encode  # noqa: PLC0415

        return encode(prediction, accept)

    def run(self, body: bytes, media: MediaType, accept: str, context: Context) -> tuple[bytes, str]:
        """The whole per-request pipeline: decode, predict, encode (or the user's transform_fn)."""
        if self.transform_fn is not None:
            try:
                result = self.transform_fn(self.model, body, media.essence, accept, context=context)
            except ServeError:
                raise
            except Exception as exc:
                log.exception("transform_fn failed (request %s)", context.request_id)
                raise _user_error("transform_fn", exc, ModelError) from exc
            return _as_body(result, accept)
        if self.input_fn is not None:
            try:
                data = self.input_fn(body, media.essence, context=context)
            except ServeError:
                raise
            except Exception as exc:
                log.warning("input_fn failed (request %s)", context.request_id, exc_info=True)
                raise _user_error("input_fn", exc, BadRequest) from exc
        else:
            data = self.decode(body, media)
        prediction = self.predict(data, context)
        if self.output_fn is not None:
            try:
                result = self.output_fn(prediction, accept, context=context)
            except ServeError:
                raise
            except Exception as exc:
                log.exception("output_fn failed (request %s)", context.request_id)
                raise _user_error("output_fn", exc, ModelError) from exc
            return _as_body(result, accept)
        return self.encode(prediction, accept), accept


def _no_predict(data: Any) -> Any:  # pragma: no cover - such a model is refused unless user code predicts
    raise ModelError("the model has no predict() method")


def _load_module(path: Path) -> ModuleType:
    # The user's code directory goes on sys.path so inference.py can import its sibling modules.
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _default_model_fn(model_dir: Path) -> Any:
    for name in MODEL_FILES:
        path = model_dir / name
        if path.is_file():
            if name.endswith(".joblib"):
                import joblib  # noqa: PLC0415

                return joblib.load(path)
            with path.open("rb") as fh:
                return pickle.load(fh)
    try:
        listing = ", ".join(sorted(p.name for p in model_dir.iterdir())[:20]) or "nothing"
    except OSError as exc:
        listing = f"unreadable ({exc.strerror})"
    raise LoadError(
        f"no model in {model_dir}: expected one of {', '.join(MODEL_FILES)} or code/inference.py with a "
        f"model_fn; found {listing}"
    )


def load_handler(
    model_dir: Path,
    program: str = "inference.py",
    default_accept: str | None = None,
    *,
    forest_fast_path: bool = True,
) -> Handler:
    """Import the user's module (if any) and load the model. Raises `LoadError` with a fix in its message."""
    if not model_dir.is_dir():
        raise LoadError(f"model directory {model_dir} does not exist (set SM_MODEL_DIR or --model-dir)")
    code = model_dir / "code" / program
    module = _load_module(code) if code.is_file() else None
    if module is None and program != "inference.py":
        raise LoadError(f"SAGEMAKER_PROGRAM={program} but {code} does not exist")
    model_fn = getattr(module, "model_fn", None)
    try:
        model = model_fn(str(model_dir)) if callable(model_fn) else _default_model_fn(model_dir)
    except LoadError:
        raise
    except Exception as exc:
        where = "model_fn" if callable(model_fn) else "loading the model"
        raise LoadError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
    handler = Handler(model, model_dir, module, default_accept, forest_fast_path=forest_fast_path)
    log.info(
        "model loaded: %s",
        json.dumps(
            {
                "model": type(model).__name__,
                "code": str(code) if module else None,
                "functions": [
                    n
                    for n in ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
                    if module and hasattr(module, n)
                ],
            }
        ),
    )
    return handler
