"""The OpenAPI schema validates, the docs page is served from local assets, and schemathesis finds
no server error and no response that contradicts the schema."""

import subprocess
import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance


def test_the_schema_validates_without_warnings(repo_root, python_env, tmp_path):
    env = {**python_env, "DEBUG": "1", "VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
                           "--file", str(tmp_path / "schema.yml")], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.django_db
def test_the_schema_and_swagger_ui_are_served_without_a_cdn_or_an_inline_script(client, user):
    client.force_login(user)
    assert client.get("/api/schema/").status_code == 200
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "<script>" not in page  # Swagger UI's set-up comes as a file (the CSP allows no inline script)
    script = page.split('<script src="')[-1].split('"')[0].replace("&amp;", "&")
    assert client.get(script)["Content-Type"].startswith("application/javascript")


@pytest.mark.django_db
def test_the_schema_and_docs_need_a_login_unless_made_public(client, user, settings):
    assert client.get("/api/schema/").status_code == 401
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and "login" in docs["Location"]
    settings.API_DOCS_PUBLIC = True
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_the_schema_is_there_for_a_token(api):
    assert api.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_the_params_are_published_with_the_bounds_and_choices_the_server_checks(client, user):
    from stylize.config import field_info

    client.force_login(user)
    schema = client.get("/api/schema/?format=json").json()
    params = schema["components"]["schemas"]["JobCreateRequest"]["properties"]["params"]
    options = params["properties"]
    assert params["additionalProperties"] is False
    assert "device" not in options and "weights" not in options  # the server chooses them
    size = field_info("size").metadata
    assert (options["size"]["minimum"], options["size"]["maximum"], options["size"]["default"]) == (
        size["min"], size["max"], field_info("size").default)
    assert options["init"]["enum"] == [c for c in field_info("init").metadata["choices"] if c != "image"]
    assert options["style_layers"]["default"] == dict(field_info("style_layers").default_factory())
    assert options["style_weight"]["description"].startswith(field_info("style_weight").metadata["help"])
    # λ: one maximum in a schema, the largest of any layer_normalisation (the server checks the one chosen).
    from stylize.config import MAX_LAYER_WEIGHTS

    weights = options["style_layers"]["additionalProperties"]
    assert (weights["minimum"], weights["maximum"]) == (0, max(MAX_LAYER_WEIGHTS.values())) == (0, 1000)
    assert "1 with balanced, 1000 with seed" in options["style_layers"]["description"]
    assert options["layer_normalisation"]["enum"] == list(field_info("layer_normalisation").metadata["choices"])
    assert options["layer_normalisation"]["default"] == "balanced"


@pytest.fixture
def api_schema(db, settings, connection_kept):
    from django.core.wsgi import get_wsgi_application

    settings.ALLOWED_HOSTS = ["*"]
    settings.API_DOCS_PUBLIC = True  # schemathesis reads the schema anonymously
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def fuzz_setup(db, make_user, upload, settings, sent, token_client):
    """A person with two images (so some generated ids exist) and no broker (`sent` keeps the messages)."""
    person = make_user("fuzzer")
    upload(person, (1, 2, 3))
    upload(person, (3, 2, 1))
    return {"Authorization": token_client(person)._credentials["HTTP_AUTHORIZATION"]}


def test_generated_requests_get_no_server_error_and_schema_conformant_responses(api_schema, fuzz_setup):
    # Driven by hand rather than by schemathesis' pytest plugin (which fails on this pytest).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=10, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=fuzz_setup, checks=[not_a_server_error, response_schema_conformance])

        check()
