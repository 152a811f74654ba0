// Caption overlay page: follows the link's event stream and shows the last few lines.
// Options (query string): lines=1..20 (default 3), size=12..200 (font px, default 48),
// position=bottom|middle|top, names=1|0 (speaker names, default 1).
// Transcript text is only ever set with textContent: it is shown, never parsed as HTML.
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const number = (name, fallback, low, high) => {
    const value = Number.parseInt(params.get(name) ?? "", 10);
    return Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : fallback;
  };
  const maxLines = number("lines", 3, 1, 20);
  const showNames = !["0", "false", "no", "off"].includes((params.get("names") ?? "1").toLowerCase());
  const position = params.get("position");
  document.documentElement.style.setProperty("--caption-size", `${number("size", 48, 12, 200)}px`);
  document.body.dataset.position = ["top", "middle", "bottom"].includes(position) ? position : "bottom";

  const captions = document.getElementById("captions");
  const status = document.getElementById("status");
  const shown = new Map(); // line key -> its element

  const element = (key) => {
    let line = shown.get(key);
    if (!line) {
      line = document.createElement("div");
      line.className = "line";
      const name = document.createElement("span");
      name.className = "name";
      const text = document.createElement("span");
      text.className = "text";
      line.append(name, text);
      captions.append(line);
      shown.set(key, line);
    }
    return line;
  };

  const show = (data) => {
    const line = element(data.k);
    line.classList.toggle("partial", !data.final);
    line.querySelector(".name").textContent = showNames ? String(data.speaker) : "";
    line.querySelector(".text").textContent = String(data.text);
    while (shown.size > maxLines) {
      const [oldest, old] = shown.entries().next().value;
      old.remove();
      shown.delete(oldest);
    }
  };

  const say = (text) => {
    status.textContent = text;
    status.hidden = !text;
  };

  // EventSource reconnects by itself after a dropped stream, sending the last event id. A refused
  // reconnect (too many connections, or a server restarting) closes it for good, so then the page
  // opens a new one itself, a little later each time, passing the last id in the query string.
  const path = location.pathname.replace(/\/+$/, "");
  let lastId = "";
  let delay = 2000;
  const connect = () => {
    const stream = new EventSource(`${path}/events${lastId ? `?last=${encodeURIComponent(lastId)}` : ""}`);
    stream.addEventListener("open", () => {
      say("");
      delay = 2000;
    });
    stream.addEventListener("line", (event) => {
      lastId = event.lastEventId || lastId;
      show(JSON.parse(event.data));
    });
    stream.addEventListener("end", () => {
      stream.close();
      say("Interpretation ended");
      document.body.dataset.ended = "1";
    });
    stream.addEventListener("error", () => {
      if (stream.readyState === EventSource.CLOSED && !document.body.dataset.ended) {
        say("Reconnecting…");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      }
    });
  };
  connect();
})();
