// The one-line signup box for other sites:
//   <script src="https://news.example.com/embed.js" async></script>
// inserts our signup form in an iframe right where the tag stands and keeps the frame as
// tall as the form (it reports its height with postMessage). Options, as data attributes:
//   data-compact        the address and a button only (topics and frequency: the site's defaults)
//   data-accent="#c2410c" data-text="#222222" data-background="#ffffff"  colours, #rrggbb
//   data-font="Georgia, serif"   the host page's font
//   data-title="Newsletter signup"  the frame's accessible name
"use strict";

(() => {
  const script = document.currentScript;
  if (!script || !script.src) return;
  const origin = new URL(script.src).origin;
  const options = script.dataset;
  const query = new URLSearchParams();
  if ("compact" in options && options.compact !== "false") query.set("compact", "1");
  for (const name of ["accent", "text", "background", "font"]) {
    if (options[name]) query.set(name, options[name]);
  }
  const frame = document.createElement("iframe");
  frame.src = `${origin}/embed${query.toString() ? `?${query}` : ""}`;
  frame.title = options.title || "Newsletter signup";
  frame.setAttribute("scrolling", "no");
  // Until the form reports its height: what it takes at 300 px wide, so nothing is cut off.
  frame.style.cssText = "display:block;width:100%;border:0;overflow:hidden";
  frame.style.height = query.has("compact") ? "300px" : "720px";
  script.insertAdjacentElement("afterend", frame);

  window.addEventListener("message", (event) => {
    // Only our own frame, from our own origin, may set its height.
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    const data = event.data;
    if (!data || data.type !== "mailer-embed-height") return;
    const height = Number(data.height);
    if (Number.isFinite(height) && height > 0 && height < 5000) frame.style.height = `${Math.ceil(height)}px`;
  });
})();
