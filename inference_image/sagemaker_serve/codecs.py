"""Decoders and encoders for the content types SageMaker users send: JSON, CSV and NPY.

Decoders turn a request body into a numpy array and say *where* a malformed body goes wrong (line and column,
row and field); encoders turn a prediction into a response body. Both live in dicts keyed by media type, and a
miss is a typed error (415 or 406), never a 500.
"""

from __future__ import annotations

import codecs as _stdlib_codecs
import io
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .content_types import CSV, JSON, NPY, MediaType
from .errors import BadRequest, NotAcceptable, UnsupportedMediaType

__all__ = ["DECODERS", "ENCODERS", "decode", "encode"]

_NPY_MAGIC = b"\x93NUMPY"
#: Keys under which a JSON object may carry its rows (TensorFlow Serving / KServe / pandas "split" styles).
_JSON_ROW_KEYS = ("instances", "inputs", "data")


def _text(body: bytes, media: MediaType) -> str:
    charset = media.param("charset", "utf-8") or "utf-8"
    try:
        _stdlib_codecs.lookup(charset)
    except LookupError:
        raise UnsupportedMediaType(f"unsupported charset {charset!r} in Content-Type") from None
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid {charset}: byte {exc.start} ({exc.reason})") from None


def decode_csv(body: bytes, media: MediaType) -> np.ndarray:
    """Numeric CSV without header -> 2-D float64 array, one row per line (trailing empty lines ignored)."""
    lines = _text(body, media).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise BadRequest("empty CSV body: send one row of comma-separated numbers per line")
    ncols = lines[0].count(",") + 1
    for number, line in enumerate(lines, 1):
        found = line.count(",") + 1
        if found != ncols:
            what = "is empty" if not line.strip() else f"has {found} fields"
            raise BadRequest(f"CSV line {number} {what}; line 1 has {ncols}")
    fields = (",".join(lines) if len(lines) > 1 else lines[0]).split(",")
    try:
        flat = np.array(fields, dtype=np.float64)
    except ValueError:
        # Slow path only on failure: find the first field that is not a number, to say where it is.
        for index, token in enumerate(fields):
            try:
                float(token)
            except ValueError:
                row, col = divmod(index, ncols)
                shown = "an empty field" if not token.strip() else f"{token.strip()[:40]!r}"
                raise BadRequest(f"CSV line {row + 1}, column {col + 1}: {shown} is not a number") from None
        raise BadRequest("CSV body could not be parsed as numbers") from None
    return flat.reshape(len(lines), ncols)


def _locate_json_problem(doc: Any) -> str:
    """Explain why a JSON document is not a rectangular array of numbers, naming the row and field."""
    if not isinstance(doc, list):
        return f"expected a list of rows, got a JSON {type(doc).__name__}"
    width: int | None = None
    for r, row in enumerate(doc):
        if isinstance(row, dict):
            return f"row {r + 1} is an object; send each row as a list of numbers"
        if not isinstance(row, list):
            if width is not None:
                return f"row {r + 1} is a {type(row).__name__}, earlier rows are lists"
            continue
        if width is None:
            width = len(row)
        elif len(row) != width:
            return f"row {r + 1} has {len(row)} values, row 1 has {width}"
        for c, value in enumerate(row):
            if isinstance(value, (list, dict)):
                continue
            try:
                float(value)
            except (TypeError, ValueError):
                return f"row {r + 1}, field {c + 1}: {json.dumps(value)[:40]} is not a number"
    return "rows must be numbers or lists of numbers of equal length"


def decode_json(body: bytes, media: MediaType) -> np.ndarray:
    """A JSON list of rows (or one row), or an object holding it under "instances", "inputs" or "data"."""
    charset = (media.param("charset") or "utf-8").lower()
    try:
        doc = json.loads(body if charset in {"utf-8", "utf8"} else _text(body, media))
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8: byte {exc.start} ({exc.reason})") from None
    except RecursionError:
        raise BadRequest("JSON body is nested too deeply") from None
    if isinstance(doc, dict):
        for key in _JSON_ROW_KEYS:
            if key in doc:
                doc = doc[key]
                break
        else:
            raise BadRequest('JSON object must hold the rows under "instances", "inputs" or "data"')
    if not isinstance(doc, list) or not doc:
        raise BadRequest("JSON body must be a non-empty list of rows (lists of numbers)")
    try:
        arr = np.array(doc, dtype=np.float64)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise BadRequest(f"JSON body is not an array of numbers: {_locate_json_problem(doc)}") from None
    if arr.ndim == 0:
        raise BadRequest("JSON body must be a list of rows")
    return arr


def decode_npy(body: bytes, media: MediaType) -> np.ndarray:
    """An .npy file (``numpy.save``) of a numeric array; pickled (object) arrays are refused."""
    if not body.startswith(_NPY_MAGIC):
        raise BadRequest("body is not an .npy file: it does not start with the \\x93NUMPY magic string")
    stream = io.BytesIO(body)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise BadRequest(
                f".npy format version {version[0]}.{version[1]} is not supported; use 1.0 or 2.0"
            )
    except BadRequest:
        raise
    except Exception as exc:  # numpy parses the header with tokenize/literal_eval: anything can come out
        raise BadRequest(f"malformed .npy header: {type(exc).__name__}: {str(exc)[:200]}") from None
    if dtype.hasobject:
        raise BadRequest(".npy body holds Python objects (pickle); send a numeric array")
    count = math.prod(shape)
    offset = stream.tell()
    expected = count * dtype.itemsize
    if len(body) - offset != expected:
        raise BadRequest(
            f".npy body is {len(body) - offset} bytes after its header, but shape {shape} of {dtype} "
            f"needs {expected}"
        )
    try:
        arr = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
        return arr.reshape(shape, order="F" if fortran else "C").copy()
    except (ValueError, TypeError) as exc:
        raise BadRequest(f".npy body does not match its header: {str(exc)[:200]}") from None


def _csv_field(value: Any) -> str:
    text = str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def encode_csv(prediction: Any) -> bytes:
    """One line per row; rows of a 2-D prediction are comma-separated."""
    arr = np.asarray(prediction)
    if arr.ndim == 0:
        return (_csv_field(arr.item()) + "\n").encode()
    if arr.ndim == 1:
        return ("\n".join(map(_csv_field, arr.tolist())) + "\n").encode()
    if arr.ndim == 2:
        return ("\n".join(",".join(map(_csv_field, row)) for row in arr.tolist()) + "\n").encode()
    raise NotAcceptable(f"a {arr.ndim}-D prediction cannot be written as text/csv; accept application/json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(prediction: Any) -> bytes:
    if isinstance(prediction, np.ndarray):
        prediction = prediction.tolist()
    return json.dumps(prediction, default=_json_default, allow_nan=True).encode()


def encode_npy(prediction: Any) -> bytes:
    arr = np.asarray(prediction)
    if arr.dtype.hasobject:
        raise NotAcceptable("the prediction holds Python objects and cannot be sent as .npy")
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    return out.getvalue()


DECODERS: dict[str, Callable[[bytes, MediaType], np.ndarray]] = {
    JSON: decode_json,
    CSV: decode_csv,
    NPY: decode_npy,
}
ENCODERS: dict[str, Callable[[Any], bytes]] = {JSON: encode_json, CSV: encode_csv, NPY: encode_npy}


def decode(body: bytes, media: MediaType) -> np.ndarray:
    decoder = DECODERS.get(media.essence)
    if decoder is None:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media.essence!r}; send one of {', '.join(DECODERS)}"
        )
    return decoder(body, media)


def encode(prediction: Any, essence: str) -> bytes:
    encoder = ENCODERS.get(essence)
    if encoder is None:
        raise NotAcceptable(f"cannot produce {essence!r}; available: {', '.join(ENCODERS)}")
    return encoder(prediction)
