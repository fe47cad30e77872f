// drover console: progressive updates. Pages are complete without this file.
//
// [data-fragment][data-stream]: when the EventSource on data-stream delivers an event, the
//   element's content is replaced by a fresh copy of the HTML fragment at data-fragment
//   (at most one fetch in flight; events arriving meanwhile cause one more fetch after).
// [data-fragment][data-load]: fetched once after the page is shown (slow, secondary parts).
// form[data-confirm]: asks before sending, and sends confirmed=yes with the answer.

async function replaceFrom(el) {
  const resp = await fetch(el.dataset.fragment, {
    credentials: "same-origin",
    headers: { "Accept": "text/html" },
  });
  if (resp.redirected || !resp.ok) return false;
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  const fresh = doc.getElementById(el.id);
  el.replaceChildren(...(fresh ? fresh.childNodes : doc.body.childNodes));
  el.dispatchEvent(new CustomEvent("drover:updated", { bubbles: true }));
  return true;
}

function keepLive(el) {
  let busy = false;
  let again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      if (!(await replaceFrom(el))) {
        // Logged out or gone: stop; the page as shown is still true for its time.
        el.dataset.liveState = "stopped";
        source.close();
        return;
      }
      el.dataset.liveState = "live";
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  const source = new EventSource(el.dataset.stream);
  source.onmessage = refresh;
  // Events between the page's render and the stream's start are not replayed: fetch once
  // on every (re)connect so nothing that happened meanwhile is missed.
  source.onopen = () => { el.dataset.liveState = "live"; refresh(); };
  source.onerror = () => { el.dataset.liveState = "reconnecting"; };
  // Typed SSE events (event: wave.paused, ...) do not reach onmessage.
  for (const t of (el.dataset.streamTypes || "").split(" ").filter(Boolean)) {
    source.addEventListener(t, refresh);
  }
}

for (const el of document.querySelectorAll("[data-fragment][data-stream]")) {
  if (el.id) keepLive(el);
}

for (const el of document.querySelectorAll("[data-fragment][data-load]")) {
  if (el.id) replaceFrom(el);
}

document.addEventListener("submit", (ev) => {
  const form = ev.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
  if (!window.confirm(form.dataset.confirm)) {
    ev.preventDefault();
    return;
  }
  // Answered here: the server skips its own confirmation page (shown to forms sent
  // without this script).
  if (!form.querySelector("input[name=confirmed]")) {
    const yes = document.createElement("input");
    Object.assign(yes, { type: "hidden", name: "confirmed", value: "yes" });
    form.append(yes);
  }
});
