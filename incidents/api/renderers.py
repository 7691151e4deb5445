"""A DRF JSON renderer on orjson: the same JSON as DRF's JSONRenderer for what the incidents API
returns (compact, UTF-8, UTC datetimes ending in "Z"), several times faster on a page of 50 rows."""
from __future__ import annotations

import decimal
import uuid

import orjson
from django.utils.functional import Promise
from rest_framework.renderers import JSONRenderer

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(obj):
    # What orjson does not know and DRF's encoder does: lazy translations, decimals, sets, durations.
    if isinstance(obj, Promise):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if hasattr(obj, "total_seconds"):  # timedelta, as DRF's encoder: seconds
        return str(obj.total_seconds())
    if hasattr(obj, "tolist"):  # numpy values
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class ORJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if accepted_media_type and "indent=" in accepted_media_type:
            return super().render(data, accepted_media_type, renderer_context)  # asked for pretty JSON
        return orjson.dumps(data, default=_default, option=OPTIONS)
