"""What the site's DRF views share: the one `CacheUnavailable` answer, and the parts of a lean entry point.

A lean entry point (`LeanAPIView`: `/mcp` and its compat routes, the webhook receiver) is called for every tool call
or delivery, so it carries nothing DRF does by default that it does not use: no authentication or permission
classes unless it names them, no CSRF or session machinery, no content negotiation over `Accept` (each answers one
type), no `Allow` header on every answer, and one capped read of the raw body, chunked or not.

In cacheops, the lower layer, so the webhook receiver here and the MCP views in mcp_tools build on the same parts.
`cacheops.errors` stays free of DRF: the engine, the poller and Celery tasks never need it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, cast

import orjson
from django.http import HttpRequest, HttpResponse
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cacheops.http import BodyTooLarge, read_capped_body


class CacheUnavailable(APIException):
    """503 for a staff or admin endpoint whose figures or action live in Redis while Redis is away."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Redis is unavailable; retry shortly."
    default_code = "cache_unavailable"


class OneTypeNegotiation(BaseContentNegotiation):
    """Use the view's one parser and one renderer whatever `Accept` says: these endpoints speak one type each.

    DRF's default parses `Accept` on every request and answers 406 when nothing matches; the endpoints this serves
    never refused a request for its `Accept`, and a client that sends `text/event-stream` too is answered JSON.
    """

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class OrjsonRenderer(BaseRenderer):
    """`application/json` (no charset parameter, as the endpoints always answered) written by orjson."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        return b"" if data is None else orjson.dumps(data)


class CappedBodyParser(BaseParser):
    """Hand the view the raw body, read once and at most `max_bytes()` long; subclasses say what is too large.

    `request.data` is then these bytes (or what `decode` makes of them), whatever the Content-Type: the views that
    use it check the type themselves, in their own words, and the webhook receiver signs the exact bytes.
    """

    media_type = "*/*"

    def max_bytes(self) -> int:
        raise NotImplementedError

    def too_large(self, limit: int) -> Exception:
        """Return the exception that refuses a body over `limit` bytes."""
        raise NotImplementedError

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        request = django_request(parser_context)
        limit = self.max_bytes()
        try:
            body = read_capped_body(request, limit)
        except BodyTooLarge:
            raise self.too_large(limit) from None
        return self.decode(request, body)

    def decode(self, request: HttpRequest, body: bytes) -> Any:
        """Return what the view gets as `request.data`: the bytes themselves here."""
        return body


def django_request(parser_context: Mapping[str, Any] | None) -> HttpRequest:
    """Return the Django request under the DRF one a parser is handed (DRF puts it in the parser context)."""
    assert parser_context is not None
    request: HttpRequest = parser_context["request"]._request
    return request


class BodyReadingRequest(Request):
    """A DRF request whose parser is always asked for the body.

    DRF takes a request without Content-Length for one without a body and never calls the parser; a chunked body
    has none, and `read_capped_body` reads it from the stream gunicorn de-chunked. The parser does every read.
    """

    def _load_stream(self) -> None:
        self._stream = cast(BinaryIO, self._request)  # as DRF itself does: the request is the stream


def _release_data(response: Response) -> None:
    """Drop a rendered answer's data and context.

    DRF's rendered response points at itself and the view (`renderer_context`): a cycle that only the garbage
    collector frees, holding the answer's data. A tool list is thousands of objects; left for the collector, every
    request's copy was traversed and promoted through the generations, costing as much as building the list again.
    The request and the view are unlinked too (`_unlink`).
    """
    context = response.renderer_context  # type: ignore[attr-defined]  # set by DRF's finalize_response, unstubbed
    if context and isinstance(context.get("request"), Request):
        _unlink(context["request"])
    response.data = None
    response.renderer_context = None  # type: ignore[attr-defined]


def _unlink(request: Request) -> None:
    """Break the cycle DRF builds around each request, once the answer is rendered.

    A DRF request's parser context names the request itself and the view, which names the request (and its
    answer) back. Left to the cyclic garbage collector, every request's objects stayed alive until a collection,
    which then had them to traverse: the Django request and its WSGI environ, the caller, the parsed body, the view
    and its answer. Without the context nothing points back, so they are freed as soon as the handler drops them.
    """
    request.parser_context = {}


class LeanAPIView(APIView):
    """An APIView with exactly what a hot entry point uses (see the module docstring); errors go to the site's
    exception handler (`jobnimbus_site.api_errors`), which asks the view for their shape (`error_response`)."""

    authentication_classes: Sequence[type] = ()
    permission_classes: Sequence[type] = ()
    throttle_classes: Sequence[type] = ()
    renderer_classes: Sequence[type] = (OrjsonRenderer,)
    parser_classes: Sequence[type] = ()
    content_negotiation_class = OneTypeNegotiation
    http_method_names = ["post"]

    @property
    def default_response_headers(self) -> dict[str, str]:
        # DRF puts `Allow` on every answer; these endpoints only ever sent it with a 405.
        return {}

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response.add_post_render_callback(_release_data)
        else:  # rendered already (`rendered`): nothing reads the parser context any more
            _unlink(request)
        return response

    def rendered(self, data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """Return `data` rendered now by the view's renderer: the answer a `Response` would give, built at once.

        For the answers of the hot path. A `Response` is a template response: rendered after the view returns,
        through DRF's renderer context and a post-render callback, holding the data and the view until then. The
        bytes, the status, `Content-Type` and the headers are the same.
        """
        renderer: BaseRenderer = self.renderer_classes[0]()
        response = HttpResponse(renderer.render(data), status=status, content_type=renderer.media_type)
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        return BodyReadingRequest(
            request,
            parsers=self.get_parsers(),
            authenticators=self.get_authenticators(),
            negotiator=self.get_content_negotiator(),
            parser_context=self.get_parser_context(request),
        )
