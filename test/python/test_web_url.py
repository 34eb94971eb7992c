"""Web endpoints' URLs from the Python client: on the daemon's web port, another origin than its API."""
from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

import gantry
from helpers import ROOT, gantry_cli

WEB_APP = ROOT / "test" / "fixtures" / "apps" / "web.ts"


def test_get_web_url_names_the_web_port_and_a_plain_function_has_none(daemon) -> None:  # type: ignore[no-untyped-def]
    deployed = gantry_cli(daemon.home, "deploy", str(WEB_APP))
    assert deployed.returncode == 0, deployed.stderr
    url = gantry.Function.from_name("web", "echo").get_web_url()
    assert url is not None and url.endswith("/web/web/echo/")
    assert urlsplit(url).port != urlsplit(daemon.url).port
    assert gantry.Function.from_name("web", "double").get_web_url() is None
    # The URL answers (the daemon has a token: web endpoints that are not public want it), and the
    # token and the dashboard's cookie never reach the function.
    req = urllib.request.Request(url + "here?x=1", headers={"X-Gantry-Token": daemon.token, "Cookie": "gantry_session=abc; a=b"})
    with urllib.request.urlopen(req, timeout=60) as res:
        seen = json.loads(res.read())
    assert seen["path"] == "/here" and seen["query"] == {"x": "1"}
    assert seen["gantry_token"] is None and seen["cookie"] == "a=b"
