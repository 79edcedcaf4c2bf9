// Reader pages, loaded as a file (the CSP allows no inline script); every page works without it.
// The time zone picker: while the reader has chosen no zone, preselect the browser's own.
"use strict";

function preselectBrowserZone(select) {
  let zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (!zone || select.value) return;
  const aliases = JSON.parse(select.dataset.aliases || "{}");
  for (const name of [zone, aliases[zone]]) {
    if (name && select.querySelector(`option[value="${CSS.escape(name)}"]`)) {
      select.value = name;
      const hint = document.querySelector("[data-browser-zone-hint]");
      if (hint) hint.hidden = false;
      return;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-browser-zone]")) preselectBrowserZone(select);
});
