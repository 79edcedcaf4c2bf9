// Inside the embedded signup frame: tell the host page how tall the form is, whenever that
// changes (an error message, the thanks page), so embed.js can size the frame to fit.
// The message carries only a height, so any parent may hear it; embed.js, on the host
// page, believes it only when it comes from this origin and from its own frame.
"use strict";

(() => {
  if (window.parent === window) return;
  let last = 0;
  const report = () => {
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height && height !== last) {
      last = height;
      window.parent.postMessage({ type: "mailer-embed-height", height }, "*");
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    report();
    if ("ResizeObserver" in window) new ResizeObserver(report).observe(document.documentElement);
    window.addEventListener("load", report);
  });
})();
