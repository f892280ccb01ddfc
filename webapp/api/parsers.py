"""Request parsing of API v1, where DRF's own parsers would answer 500 or a 400 that names no field."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NESTED_TOO_DEEPLY = "JSON parse error - nested too deeply"


class JobJSONParser(JSONParser):
    """JSON bodies of jobs and batches.

    NaN and Infinity are read (Python's json.dumps writes them), so the serializers refuse
    them with a message on the field that holds them, instead of a parse error naming none;
    nothing unvalidated is kept or echoed. Nesting past Python's recursion limit is a 400,
    where DRF (catching only ValueError) lets the RecursionError out as a 500.
    """

    strict = False

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(NESTED_TOO_DEEPLY) from None

