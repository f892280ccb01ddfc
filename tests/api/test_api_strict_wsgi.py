"""The API's answers pass a strict WSGI server: wsgiref's validator (what Django's development server
enforces) refuses any header name or value whose type is not exactly str, where gunicorn lets a
str subclass through. Django's test client checks neither, so these requests go through the real
WSGI application."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from django.core.wsgi import get_wsgi_application
from knox.models import AuthToken

from tests.conftest import flat_png

pytestmark = pytest.mark.django_db
BOUNDARY = "strict-wsgi-boundary"


def call(method: str, path: str, token: str, body: bytes = b"", content_type: str = "",
         **headers: str) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers, body) of one request through validator(Django's WSGI application)."""
    environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "", "HTTP_HOST": "testserver",
               "HTTP_AUTHORIZATION": f"Token {token}", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type,
               **{f"HTTP_{name.upper()}": value for name, value in headers.items()}}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer.update(status=status, headers=dict(response_headers))
        return lambda data: None

    result = validator(get_wsgi_application())(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        result.close()
    return answer["status"], answer["headers"], content


def multipart(name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture
def token(user) -> str:
    return AuthToken.objects.create(user, expiry=None)[1]


def test_an_upload_answers_with_a_location_a_strict_server_accepts(token, connection_kept):
    status, headers, body = call("POST", "/api/v1/images/", token, *multipart("file", "a.png", flat_png((9, 9, 9))))
    assert status.startswith("201") and headers["Location"] == json.loads(body)["url"]
    again = call("POST", "/api/v1/images/", token, *multipart("file", "a.png", flat_png((9, 9, 9))))
    assert again[0].startswith("200") and again[1]["Location"] == headers["Location"]


def test_a_job_and_a_batch_and_their_replays_too(token, content, style, tiny_params, sent, connection_kept):
    job = json.dumps({"content": str(content.pk), "styles": [str(style.pk)], "params": tiny_params}).encode()
    for attempt in range(2):  # the second is answered from the stored Idempotency-Key
        status, headers, body = call("POST", "/api/v1/jobs/", token, job, "application/json", IDEMPOTENCY_KEY="j")
        assert status.startswith("202") and headers["Location"] == json.loads(body)["url"]
    assert headers["Idempotent-Replayed"] == "true"
    batch = json.dumps({"contents": [str(content.pk)], "styles": [str(style.pk)], "params": tiny_params}).encode()
    status, headers, body = call("POST", "/api/v1/batches/", token, batch, "application/json")
    assert status.startswith("202") and headers["Location"] == json.loads(body)["url"]
