"""The UI's settings script: served before the app, carrying only settings that are set."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from gateway.app import STATIC_DIR, build_app
from gateway.ui_config import UI_CONFIG_PATH
from likeopt.runtime.config import Config
from likeopt.runtime.contract import LIST_LIMIT, MAX_COMMENT_CHARS, MAX_QUERY_CHARS, MAX_UPLOAD_FILES
from likeopt.runtime.loaders import NAMED_FILES, NAMED_VARIANTS, SUPPORTED


def _script(environ: dict[str, str]) -> str:
    response = TestClient(build_app(Config.from_env(environ))).get(UI_CONFIG_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    return response.text


FILE_TYPES = (
    f"window.LIKEOPT_FILE_TYPES = {json.dumps(sorted(SUPPORTED))};\n"
    f"window.LIKEOPT_FILE_NAMES = {json.dumps(sorted(NAMED_FILES))};\n"
    f"window.LIKEOPT_FILE_NAME_VARIANTS = {json.dumps(sorted(NAMED_VARIANTS))};\n"
)
ALWAYS = (
    FILE_TYPES
    + f"window.LIKEOPT_MAX_QUERY_CHARS = {MAX_QUERY_CHARS};\n"
    + f"window.LIKEOPT_MAX_COMMENT_CHARS = {MAX_COMMENT_CHARS};\n"
    + f"window.LIKEOPT_MAX_UPLOAD_FILES = {MAX_UPLOAD_FILES};\n"
    + f"window.LIKEOPT_MAX_REQUEST_BYTES = {Config.from_env({}).max_request_bytes};\n"
    + f"window.LIKEOPT_MAX_LIST_LIMIT = {LIST_LIMIT.high};\n"
)
"""What the page always needs: the file types the loaders read, the longest question the services take, the most
files and bytes one upload may hold (the Documents tab sends more in batches) and the most documents one listing
returns."""


def test_the_request_body_limit_reaches_the_page_as_set():
    assert "window.LIKEOPT_MAX_REQUEST_BYTES = 1048576;\n" in _script({"LIKEOPT_MAX_REQUEST_BYTES": "1048576"})


def test_jaeger_url_reaches_the_page():
    script = _script({"LIKEOPT_JAEGER_URL": "http://127.0.0.1:16686/"})
    assert script == 'window.LIKEOPT_JAEGER_URL = "http://127.0.0.1:16686";\n' + ALWAYS


def test_only_the_file_types_and_the_question_limit_are_set_without_settings():
    assert _script({}) == ALWAYS and '".csv"' in FILE_TYPES and '".exe"' not in FILE_TYPES
    assert '".gitignore"' in FILE_TYPES and '"dockerfile"' in FILE_TYPES  # read by their whole name


def test_only_web_urls_are_accepted():
    with pytest.raises(ValueError, match="LIKEOPT_JAEGER_URL"):
        Config.from_env({"LIKEOPT_JAEGER_URL": "javascript:alert(1)"})


def test_the_page_loads_the_settings_before_the_app():
    page = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert scripts.index(UI_CONFIG_PATH) < scripts.index("/static/app.js")
    assert "<script>" not in page, "no inline script"
