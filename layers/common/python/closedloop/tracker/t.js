/*! Closedloop tracker (docs/tracker.md): page views, events, the visitor id on every form */
(function (w, d, nav, loc) {
  if (w.closedloop && w.closedloop.v) return; // already loaded
  // Options are the data-* attributes of this script tag; the API is where t.js came from.
  const me = d.currentScript || d.querySelector('script[src*="/t.js"]');
  const attr = (name) => me && me.getAttribute("data-" + name);
  const GPC = attr("honor-gpc") != "false", DNT = attr("honor-dnt") == "true", DOMAIN = attr("domain");
  const API = me ? me.src.replace(/\/t\.js([?#].*)?$/, "") : "";
  const VID = "_cl_vid", SID = "_cl_sid", CONSENT = "_cl_consent", FIELD = "closedloop_visitor_id";
  const DAYS_400 = 34560000; // seconds; the browsers' cap
  let viewed, buf = [], timer, vid, sid;
  let cur = loc.href, ref = d.referrer; // current URL, its referrer (in a SPA: the previous URL)

  // 128 random bits as 32 hex characters (randomUUID needs a secure context)
  const rid = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => (b + 256).toString(16).slice(1)).join("");
  const get = (name) => (d.cookie.match("(?:^|; )" + name + "=([^;]*)") || [])[1];
  const set = (name, value, age) => {
    d.cookie = `${name}=${value};path=/;max-age=${age};SameSite=Lax` +
      (DOMAIN ? ";domain=" + DOMAIN : "") + (loc.protocol == "https:" ? ";Secure" : "");
  };
  const on = () => get(CONSENT) != "0" && !(GPC && nav.globalPrivacyControl) && !(DNT && nav.doNotTrack == "1");
  const valid = (id) => /^[\w-]{22,36}$/.test(id) && id;
  const ids = () => {
    set(VID, (vid = valid(get(VID)) || rid()), DAYS_400);
    set(SID, (sid = valid(get(SID)) || rid()), 1800); // rolling 30 minutes
  };

  const flush = () => {
    timer = clearTimeout(timer);
    while (buf.length) {
      const url = API + "/collect", body = JSON.stringify({ sent_at: Date.now(), events: buf.splice(0, 50) });
      try {
        if (nav.sendBeacon(url, body)) continue;
      } catch (e) {}
      fetch(url, { method: "POST", body, keepalive: true, mode: "cors", credentials: "omit",
        headers: { "Content-Type": "text/plain" } }).catch(() => {});
    }
  };
  const emit = (event) => {
    if (!on()) return;
    ids();
    buf.push(Object.assign(event, { event_id: rid(), visitor_id: vid, session_id: sid, ts: Date.now() }));
    timer = timer || setTimeout(flush); // one request per task
    return (viewed = viewed || event.type == "page_view");
  };
  const view = (url, referrer) => emit({ type: "page_view", url, referrer, title: d.title });

  const tag = (form) => {
    let input = form.querySelector(`[name=${FIELD}]`);
    if (!input) {
      input = form.appendChild(d.createElement("input"));
      input.type = "hidden";
      input.name = FIELD;
    }
    input.value = vid;
  };
  const tagAll = () => vid && d.forms.length && on() && Array.from(d.forms).forEach(tag);
  new MutationObserver(tagAll).observe(d.documentElement, { childList: true, subtree: true });
  d.addEventListener("submit", (e) => vid && on() && tag(e.target), true);

  // SPA: a new URL (ignoring the #fragment) is a page view
  const moved = () => {
    const changed = loc.href.split("#")[0] != cur.split("#")[0];
    if (changed) ref = cur;
    cur = loc.href;
    return changed;
  };
  const spa = () => moved() && setTimeout(view, 0, cur, ref); // after the app sets the title
  // replaceState counts only when the path changes, not when an app tidies its query string
  ["pushState", "replaceState"].forEach((method) => {
    const original = history[method];
    history[method] = function () {
      const path = loc.pathname, result = original.apply(this, arguments);
      method == "pushState" || loc.pathname != path ? spa() : (cur = loc.href);
      return result;
    };
  });
  w.addEventListener("popstate", spa);

  const start = () => on() && (ids(), tagAll(), viewed || view(cur, ref));
  const commands = {
    consent(yes) {
      set(CONSENT, "0", yes ? 0 : DAYS_400);
      if (yes) return start();
      vid = sid = null;
      buf = [];
      set(VID, "", 0);
      set(SID, "", 0);
      d.querySelectorAll(`[name=${FIELD}]`).forEach((input) => input.remove());
    },
    track: (name, props) => emit({ type: "track", name, props: props || {}, url: loc.href }),
    page: () => view(moved() ? cur : cur, ref),
    // resolves to the JSON reply; rejects with the Response on an HTTP error
    identify(fields) {
      const body = Object.assign({}, fields);
      if (on()) ids(), (body.visitor_id = vid);
      return fetch(API + "/identify", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) }).then((r) => (r.ok ? r.json() : Promise.reject(r)));
    },
  };

  const closedloop = (command, ...args) => commands[command] && commands[command](...args);
  const queued = (w.closedloop && w.closedloop.q) || [];
  w.closedloop = closedloop;
  closedloop.v = 1;
  Array.from(queued).forEach((args) => closedloop(...args)); // replay the calls made before t.js loaded
  start();
  d.addEventListener("visibilitychange", () => d.hidden && flush());
})(window, document, navigator, location);
