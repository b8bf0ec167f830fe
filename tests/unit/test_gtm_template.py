"""The Google Tag Manager template: its sections, its permissions and its Consent Mode v2 handling.

GTM runs a template's code in its sandbox, which only offers the APIs the template ``require()``s and only
within the permissions it declares. Here the sections are parsed, the permissions are checked against what
the code calls, and the code is run under Node with fakes of those APIs that enforce the declared
permissions, through the consent sequences a page can go through.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "integrations" / "gtm" / "closedloop-tracker.tpl"
ORIGIN = "https://abc123.execute-api.eu-west-1.amazonaws.com"
TRACKER = ORIGIN + "/t.js"

# The permission each sandboxed API needs (GTM's "Custom template APIs" reference).
API_PERMISSIONS: dict[str, str | None] = {
    "addConsentListener": "access_consent",
    "isConsentGranted": "access_consent",
    "callInWindow": "access_globals",
    "copyFromWindow": "access_globals",
    "createArgumentsQueue": "access_globals",
    "createQueue": "access_globals",
    "setInWindow": "access_globals",
    "injectScript": "inject_script",
    "logToConsole": "logging",
    "templateStorage": "access_template_storage",
    "queryPermission": None,
}


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^___([A-Z_]+)___$", text, flags=re.MULTILINE)
    assert parts[0].strip() == "", "text before the first section"
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


SECTIONS = _sections(TEMPLATE.read_text(encoding="utf-8"))
INFO: dict[str, Any] = json.loads(SECTIONS["INFO"])
PARAMETERS: list[dict[str, Any]] = json.loads(SECTIONS["TEMPLATE_PARAMETERS"])
PERMISSIONS: list[dict[str, Any]] = json.loads(SECTIONS["WEB_PERMISSIONS"])
CODE = SECTIONS["SANDBOXED_JS_FOR_WEB_TEMPLATE"]


def _value(node: dict[str, Any]) -> Any:
    """Decode GTM's typed permission values (1 string, 2 list, 3 map, 8 boolean)."""
    kind = node["type"]
    if kind == 1:
        return node["string"]
    if kind == 8:
        return node["boolean"]
    if kind == 2:
        return [_value(item) for item in node.get("listItem", [])]
    if kind == 3:
        return {
            key["string"]: _value(value) for key, value in zip(node["mapKey"], node["mapValue"], strict=True)
        }
    raise AssertionError(f"unknown value type {kind}")


def _permissions() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for permission in PERMISSIONS:
        public_id = permission["instance"]["key"]["publicId"]
        assert public_id not in found, f"{public_id} declared twice"
        found[public_id] = {param["key"]: _value(param["value"]) for param in permission["instance"]["param"]}
    return found


DECLARED = _permissions()
REQUIRED_APIS = re.findall(r"require\('([A-Za-z]+)'\)", CODE)


def test_the_template_has_gtms_sections_in_order() -> None:
    assert list(SECTIONS) == [
        "TERMS_OF_SERVICE",
        "INFO",
        "TEMPLATE_PARAMETERS",
        "SANDBOXED_JS_FOR_WEB_TEMPLATE",
        "WEB_PERMISSIONS",
        "TESTS",
        "NOTES",
    ]


def test_info_declares_a_web_tag() -> None:
    assert INFO["type"] == "TAG"
    assert INFO["containerContexts"] == ["WEB"]
    assert INFO["id"] == "cvt_temp_public_id"
    assert INFO["securityGroups"] == []
    assert INFO["displayName"] and INFO["description"] and INFO["brand"]["displayName"]


def test_the_api_origin_parameter_accepts_only_an_https_origin() -> None:
    # Given the one text field and its validators
    (field,) = [parameter for parameter in PARAMETERS if parameter["type"] == "TEXT"]
    assert field["name"] == "apiOrigin"
    assert {"type": "NON_EMPTY"} in field["valueValidators"]
    (pattern,) = [v["args"][0] for v in field["valueValidators"] if v["type"] == "REGEX"]

    # Then
    for good in (ORIGIN, ORIGIN + "/", "https://track.example.com", "https://localhost:3000"):
        assert re.fullmatch(pattern, good), good
    for bad in ("http://track.example.com", "https://track.example.com/t.js", "javascript:alert(1)", ""):
        assert not re.fullmatch(pattern, bad), bad


def test_every_api_the_code_requires_is_known_and_required_once() -> None:
    assert sorted(REQUIRED_APIS) == sorted(set(REQUIRED_APIS))
    assert set(REQUIRED_APIS) <= set(API_PERMISSIONS), set(REQUIRED_APIS) - set(API_PERMISSIONS)


def test_permissions_cover_what_the_code_calls_and_nothing_more() -> None:
    needed = {API_PERMISSIONS[api] for api in REQUIRED_APIS} - {None}

    assert set(DECLARED) == needed


def test_the_globals_are_exactly_the_trackers_function_and_queue() -> None:
    keys = {entry["key"]: entry for entry in DECLARED["access_globals"]["keys"]}
    called = set(re.findall(r"callInWindow\('([\w.]+)'", CODE))
    queued = re.findall(r"createArgumentsQueue\('([\w.]+)', '([\w.]+)'\)", CODE)

    assert called == {"closedloop"}
    assert queued == [("closedloop", "closedloop.q")]
    assert set(keys) == {"closedloop", "closedloop.q"}
    assert keys["closedloop"] == {"key": "closedloop", "read": True, "write": True, "execute": True}
    assert keys["closedloop.q"] == {"key": "closedloop.q", "read": True, "write": True, "execute": False}


def test_consent_is_read_for_analytics_storage_only_and_never_written() -> None:
    used = set(re.findall(r"\b(?:isConsentGranted|addConsentListener)\((\w+)", CODE))
    constants = dict(re.findall(r"const (\w+) = '(\w+)';", CODE))

    assert {constants.get(name, name) for name in used} == {"analytics_storage"}
    assert DECLARED["access_consent"]["consentTypes"] == [
        {"consentType": "analytics_storage", "read": True, "write": False}
    ]


def test_scripts_may_only_be_injected_from_t_js_over_https() -> None:
    urls = DECLARED["inject_script"]["urls"]

    assert urls, "no script URL allowed"
    assert all(url.startswith("https://") and url.endswith("/t.js") for url in urls), urls
    assert "'/t.js'" in CODE


def test_the_code_stays_inside_gtms_sandboxed_javascript() -> None:
    # The sandbox has no DOM or window globals, no regular expression literals, no `new`, no classes,
    # no template literals and no `typeof`; the template must use the required APIs instead.
    without_strings = re.sub(r"'(?:[^'\\]|\\.)*'", "''", CODE)
    without_comments = re.sub(r"//[^\n]*", "", without_strings)
    for forbidden in (r"\bwindow\b", r"\bdocument\b", r"\bnew\b", r"\bclass\b", r"\btypeof\b", "`"):
        assert not re.search(forbidden, without_comments), forbidden
    assert not re.search(r"[=(,]\s*/[^/*]", without_comments), "regular expression literal"


# Fakes of GTM's sandbox APIs, enforcing the declared permissions, and a page that runs the tag's code.
HARNESS = r"""
const vm = require('node:vm');
const {code, permissions, steps, initial} = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const log = [];
let state = initial; // analytics_storage: true, false
const listeners = [];
const storage = new Map();
let pending = null;

const fail = (message) => { throw new Error('permission: ' + message); };
const globals = Object.fromEntries(permissions.access_globals.keys.map((k) => [k.key, k]));
const allowedScript = (url) => permissions.inject_script.urls.some((pattern) => {
  const [, host, path] = pattern.match(/^https:\/\/([^/]+)(\/.*)$/);
  const u = new URL(url);
  if (u.protocol != 'https:') return false;
  const hostOk = host.startsWith('*.') ? u.host.endsWith(host.slice(1)) : u.host == host;
  const pathOk = path.endsWith('*') ? u.pathname.startsWith(path.slice(0, -1)) : u.pathname == path;
  return hostOk && pathOk && !u.search;
});
const consentReadable = (type) =>
  permissions.access_consent.consentTypes.some((c) => c.consentType == type && c.read) ||
  fail('consent ' + type);

const apis = {
  addConsentListener(type, fn) {
    consentReadable(type);
    log.push(['addConsentListener', type]);
    listeners.push(fn);
  },
  isConsentGranted(type) { consentReadable(type); log.push(['isConsentGranted', type]); return state; },
  callInWindow(key, ...args) {
    (globals[key] && globals[key].execute) || fail('execute ' + key);
    log.push(['callInWindow', key, ...args]);
  },
  createArgumentsQueue(fnKey, arrayKey) {
    const writable = (k) => globals[k] && globals[k].read && globals[k].write;
    [fnKey, arrayKey].forEach((k) => writable(k) || fail('queue ' + k));
    log.push(['createArgumentsQueue', fnKey, arrayKey]);
  },
  injectScript(url, onSuccess, onFailure, cacheToken) {
    allowedScript(url) || fail('inject ' + url);
    log.push(['injectScript', url, cacheToken]);
    pending = {onSuccess, onFailure};
  },
  logToConsole(...args) { permissions.logging || fail('logging'); log.push(['logToConsole']); },
  queryPermission(name, url) {
    if (name != 'inject_script') fail('query ' + name);
    return allowedScript(url);
  },
  templateStorage: {
    getItem: (k) => storage.get(k),
    setItem: (k, v) => { permissions.access_template_storage || fail('storage'); storage.set(k, v); },
    removeItem: (k) => storage.delete(k),
  },
};

for (const step of steps) {
  if (step.fire) {
    const data = Object.assign({}, step.fire, {
      gtmOnSuccess: () => log.push(['gtmOnSuccess']),
      gtmOnFailure: () => log.push(['gtmOnFailure']),
    });
    const sandboxRequire = (name) => {
      if (!(name in apis)) throw new Error('no such API ' + name);
      return apis[name];
    };
    vm.runInNewContext(code, {require: sandboxRequire, data});
  } else if ('consent' in step) {
    // GTM calls the listeners only when the state changes between denied and granted.
    if (step.consent != state) {
      state = step.consent;
      listeners.forEach((fn) => fn('analytics_storage', state));
    }
  } else if (step.script) {
    const callbacks = pending;
    pending = null;
    callbacks[step.script == 'loaded' ? 'onSuccess' : 'onFailure']();
  }
}
process.stdout.write(JSON.stringify(log));
"""

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js runs the template's sandboxed code")


def _node(
    permissions: dict[str, Any], initial: bool, steps: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    payload = {"code": CODE, "permissions": permissions, "steps": steps, "initial": initial}
    return subprocess.run(
        [NODE, "-e", HARNESS],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run_page(initial: bool, *steps: dict[str, Any]) -> list[list[Any]]:
    """Fire the tag and replay consent updates on one page; return the sandbox API calls, in order."""
    result = _node(DECLARED, initial, list(steps))
    assert result.returncode == 0, result.stderr
    calls: list[list[Any]] = json.loads(result.stdout)
    return [call for call in calls if call[0] not in ("isConsentGranted", "logToConsole")]


FIRE = {"fire": {"apiOrigin": ORIGIN}}


@needs_node
def test_granted_at_load_injects_the_tracker_and_succeeds_once_loaded() -> None:
    calls = run_page(True, FIRE, {"script": "loaded"})

    assert calls == [
        ["createArgumentsQueue", "closedloop", "closedloop.q"],
        ["addConsentListener", "analytics_storage"],
        ["injectScript", TRACKER, "closedloop"],
        ["gtmOnSuccess"],
    ]


@needs_node
def test_denied_at_load_loads_nothing_until_granted() -> None:
    # When the page loads without analytics_storage
    calls = run_page(False, FIRE)

    # Then the tag completes without loading or calling the tracker
    assert calls == [
        ["createArgumentsQueue", "closedloop", "closedloop.q"],
        ["addConsentListener", "analytics_storage"],
        ["gtmOnSuccess"],
    ]


@needs_node
def test_a_later_grant_lifts_an_earlier_refusal_then_loads_the_tracker() -> None:
    calls = run_page(False, FIRE, {"consent": True}, {"script": "loaded"})

    assert calls[3:] == [
        ["callInWindow", "closedloop", "consent", True],
        ["injectScript", TRACKER, "closedloop"],
    ]


@needs_node
def test_a_later_denial_stops_the_tracker_and_a_new_grant_restarts_it_without_a_second_copy() -> None:
    calls = run_page(True, FIRE, {"script": "loaded"}, {"consent": False}, {"consent": True})

    assert calls[4:] == [
        ["callInWindow", "closedloop", "consent", False],
        ["callInWindow", "closedloop", "consent", True],
    ]


@needs_node
def test_a_denial_while_t_js_is_still_loading_is_queued_for_it() -> None:
    # The call goes to the queue stub; t.js replays it before its first page view.
    calls = run_page(True, FIRE, {"consent": False}, {"script": "loaded"})

    assert calls[3:] == [
        ["callInWindow", "closedloop", "consent", False],
        ["gtmOnSuccess"],
    ]


@needs_node
def test_a_denial_before_anything_loaded_calls_nothing() -> None:
    # Granted then denied before the tag fired: the state at firing time is denied, nothing to stop.
    calls = run_page(True, {"consent": False}, FIRE, {"consent": True}, {"consent": False})

    assert [call for call in calls if call[0] in ("callInWindow", "injectScript")] == [
        ["callInWindow", "closedloop", "consent", True],
        ["injectScript", TRACKER, "closedloop"],
        ["callInWindow", "closedloop", "consent", False],
    ]
    never_loaded = run_page(False, FIRE, {"consent": False})
    assert [call for call in never_loaded if call[0] == "callInWindow"] == []


@needs_node
def test_firing_twice_on_a_page_injects_once_and_listens_once() -> None:
    calls = run_page(True, FIRE, {"script": "loaded"}, FIRE, {"consent": False})

    assert [call[0] for call in calls].count("injectScript") == 1
    assert [call[0] for call in calls].count("addConsentListener") == 1
    assert [call for call in calls if call[0] == "callInWindow"] == [
        ["callInWindow", "closedloop", "consent", False]
    ]


@needs_node
def test_a_trailing_slash_on_the_origin_is_dropped() -> None:
    calls = run_page(True, {"fire": {"apiOrigin": ORIGIN + "//"}})

    assert ["injectScript", TRACKER, "closedloop"] in calls


@needs_node
def test_a_failed_load_fails_the_tag_and_a_later_grant_tries_again() -> None:
    calls = run_page(True, FIRE, {"script": "failed"}, {"consent": False}, {"consent": True})

    # Then the tag fails, the denial finds no tracker to stop, and the grant injects t.js again
    assert calls[2:] == [
        ["injectScript", TRACKER, "closedloop"],
        ["gtmOnFailure"],
        ["callInWindow", "closedloop", "consent", True],
        ["injectScript", TRACKER, "closedloop"],
    ]


@needs_node
@pytest.mark.parametrize(
    "origin", ["https://track.example.com", "http://abc123.execute-api.eu-west-1.amazonaws.com", ""]
)
def test_an_origin_the_permission_does_not_allow_fails_the_tag_without_loading(origin: str) -> None:
    calls = run_page(True, {"fire": {"apiOrigin": origin}})

    assert calls == [["gtmOnFailure"]]


@needs_node
def test_the_permission_enforcing_fakes_do_refuse_an_undeclared_global() -> None:
    # Guards the harness itself: with the closedloop key removed the tag's code must be refused.
    permissions = json.loads(json.dumps(DECLARED))
    permissions["access_globals"]["keys"] = [
        k for k in permissions["access_globals"]["keys"] if k["key"] != "closedloop"
    ]
    result = _node(permissions, True, [FIRE])

    assert result.returncode != 0
    assert "permission: queue closedloop" in result.stderr
