/*
 * Closedloop tracker: the readable source of t.js (docs/tracker.md explains the snippet, the commands,
 * the cookies, the privacy rules and the wire format).
 *
 * t.js is this file minified by terser; rebuild it with the command in docs/tracker.md after any change
 * (a test fails when the sha256 of this file in t.js's first line is not this file's).
 * Plain ES2018, no dependencies, no build step at run time: the collect function serves t.js as-is.
 */
(function (w, d, nav, loc) {
  "use strict";
  if (w.closedloop && w.closedloop.v) return; // the snippet was pasted twice: keep the first copy

  // Options are the data-* attributes of this script tag; the API base URL is where t.js came from.
  const me = d.currentScript || d.querySelector('script[src*="/t.js"]');
  const attr = (name) => me && me.getAttribute("data-" + name);
  const GPC = attr("honor-gpc") != "false"; // honoured unless data-honor-gpc="false"
  const DNT = attr("honor-dnt") == "true"; // ignored unless data-honor-dnt="true"
  const DOMAIN = attr("domain"); // cookie domain, e.g. ".example.com"; default: this host only
  const API = me ? me.src.replace(/\/t\.js([?#].*)?$/, "") : "";

  const VID = "_cl_vid", SID = "_cl_sid", CONSENT = "_cl_consent", FIELD = "closedloop_visitor_id";
  const DAYS_400 = 400 * 86400; // seconds: the longest cookie lifetime browsers accept
  const SESSION = 30 * 60; // seconds: the session cookie expires 30 minutes after the last event

  let vid, sid; // the ids of the last event (vid is also what the forms carry)
  let buf = [], timer; // events waiting to be sent, and the pending send
  let viewed = false; // a page view was sent for this page load
  let cur = loc.href, ref = d.referrer; // the current URL and its referrer (in a SPA: the previous URL)

  // 32 hex characters, 128 random bits. crypto.randomUUID would do, but only in secure contexts.
  const randomId = () =>
    Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => (b + 256).toString(16).slice(1)).join("");
  const isId = (value) => /^[\w-]{22,36}$/.test(value); // what the collect endpoint accepts

  const getCookie = (name) => (d.cookie.match("(?:^|; )" + name + "=([^;]*)") || [])[1];
  const setCookie = (name, value, maxAge) => {
    d.cookie =
      `${name}=${value}; path=/; max-age=${maxAge}; SameSite=Lax` +
      (DOMAIN ? "; domain=" + DOMAIN : "") +
      (loc.protocol == "https:" ? "; Secure" : "");
  };

  // Tracking is on unless the visitor refused it, or sends GPC (or DNT) and the site honours it.
  const on = () =>
    getCookie(CONSENT) != "0" &&
    !(GPC && nav.globalPrivacyControl === true) &&
    !(DNT && nav.doNotTrack == "1");

  // Reads the ids from the cookies (minting missing ones) and refreshes both cookies.
  const touchIds = () => {
    vid = getCookie(VID);
    sid = getCookie(SID);
    if (!isId(vid)) vid = randomId();
    if (!isId(sid)) sid = randomId();
    setCookie(VID, vid, DAYS_400);
    setCookie(SID, sid, SESSION);
  };

  // Sends the waiting events, at most 50 per request: sendBeacon (text/plain), else fetch.
  const flush = () => {
    clearTimeout(timer);
    timer = 0;
    while (buf.length) {
      const url = API + "/collect";
      const body = JSON.stringify({ sent_at: Date.now(), events: buf.splice(0, 50) });
      try {
        if (nav.sendBeacon(url, body)) continue;
      } catch (err) {
        // no sendBeacon: fall through to fetch
      }
      fetch(url, {
        method: "POST",
        body,
        keepalive: true,
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "text/plain" },
      }).catch(() => {});
    }
  };

  // Adds the ids and a timestamp to an event and queues it; the events of one task go out together.
  const emit = (event) => {
    if (!on()) return false;
    touchIds();
    event.event_id = randomId();
    event.visitor_id = vid;
    event.session_id = sid;
    event.url = event.url || loc.href;
    event.ts = Date.now();
    buf.push(event);
    timer = timer || setTimeout(flush, 0);
    return true;
  };
  const pageView = (url, referrer) => {
    if (emit({ type: "page_view", url, referrer, title: d.title })) viewed = true;
  };

  // Every form carries the visitor id as a hidden field, so that a plain HTML form posted to /identify
  // links the lead to this visitor. Forms added later are found by the observer (or at submit time).
  const tagForm = (form) => {
    let input = form.querySelector(`input[name=${FIELD}]`);
    if (!input) {
      input = d.createElement("input");
      input.type = "hidden";
      input.name = FIELD;
      form.appendChild(input);
    }
    input.value = vid;
  };
  const tagForms = () => {
    if (vid && d.forms.length && on()) Array.from(d.forms).forEach(tagForm);
  };
  new MutationObserver(tagForms).observe(d.documentElement, { childList: true, subtree: true });
  d.addEventListener("submit", (e) => vid && on() && tagForm(e.target), true);

  // SPA navigations. A new URL is a page view; a change of the #fragment alone is not.
  const moved = () => {
    const changed = loc.href.split("#")[0] != cur.split("#")[0];
    if (changed) ref = cur;
    cur = loc.href;
    return changed;
  };
  const navigated = () => {
    // Sent in the next task, as apps usually set document.title right after pushState.
    if (moved()) setTimeout(pageView, 0, cur, ref);
  };
  ["pushState", "replaceState"].forEach((method) => {
    const original = history[method];
    history[method] = function () {
      const path = loc.pathname;
      const result = original.apply(this, arguments);
      // replaceState is a navigation only when the path changes, not when an app tidies its query string.
      if (method == "pushState" || loc.pathname != path) navigated();
      else cur = loc.href;
      return result;
    };
  });
  w.addEventListener("popstate", navigated);

  const start = () => {
    if (!on()) return;
    touchIds();
    tagForms();
    if (!viewed) pageView(cur, ref);
  };

  const commands = {
    // consent(false): forget the visitor, stop, and remember the refusal; consent(true): start again.
    consent(granted) {
      if (granted) {
        setCookie(CONSENT, "", 0);
        return start();
      }
      setCookie(CONSENT, "0", DAYS_400);
      setCookie(VID, "", 0);
      setCookie(SID, "", 0);
      vid = sid = null;
      buf = [];
      d.querySelectorAll(`input[name=${FIELD}]`).forEach((input) => input.remove());
    },
    track(name, props) {
      emit({ type: "track", name, props: props || {} });
    },
    page() {
      moved();
      pageView(cur, ref);
    },
    // For forms the site posts itself. Resolves to the JSON reply; rejects with the Response on an
    // HTTP error. Without consent the lead is still sent, but not linked to a visitor.
    identify(fields) {
      const body = Object.assign({}, fields);
      if (on()) {
        touchIds();
        body.visitor_id = vid;
      }
      return fetch(API + "/identify", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      }).then((response) => (response.ok ? response.json() : Promise.reject(response)));
    },
  };

  const closedloop = (command, ...args) => {
    if (commands[command]) return commands[command](...args);
    console.warn("closedloop: unknown command", command);
  };
  const queued = (w.closedloop && w.closedloop.q) || [];
  closedloop.v = 1;
  w.closedloop = closedloop;
  Array.from(queued).forEach((args) => closedloop(...args)); // calls made before t.js loaded, in order
  start(); // the page view of this page load (unless a queued "page" command sent it already)

  // Send what is left when the page goes away (tab hidden, navigation, bfcache).
  d.addEventListener("visibilitychange", () => d.visibilityState == "hidden" && flush());
  w.addEventListener("pagehide", flush);
})(window, document, navigator, location);
