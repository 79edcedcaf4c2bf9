// The console's few live parts, loaded as a file (the CSP allows no inline script):
// the recipient count while composing, the progress of a sending campaign, and
// "are you sure?" on forms that carry data-confirm. Every page works without it.
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});

function liveAudience(form) {
  const output = document.getElementById("audience-count");
  if (!output) return;
  let asked = 0;
  const update = async () => {
    const query = new URLSearchParams();
    for (const box of form.querySelectorAll("input[name=topics]:checked, input[name=notices]:checked")) {
      query.append(box.name, box.value);
    }
    const mine = ++asked;
    try {
      const answer = await fetch(`${form.dataset.audienceUrl}?${query}`, { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const data = await answer.json();
      if (mine === asked) output.textContent = data.recipients.toLocaleString("en");
    } catch (error) {
      // Offline for a moment: the count is shown again at the next change.
    }
  };
  form.addEventListener("change", (event) => {
    if (event.target.name === "topics" || event.target.name === "notices") update();
  });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.round(seconds);
  if (whole < 90) return `${whole} s`;
  if (whole < 5400) return `${Math.round(whole / 60)} min`;
  return `${(whole / 3600).toFixed(1)} h`;
}

function showControls(section, state) {
  for (const box of section.querySelectorAll("[data-show-when]")) {
    const states = box.dataset.showWhen.split(" ");
    const needs = box.dataset.needs;
    box.hidden = !states.includes(state.status) || (needs && !state[needs]);
  }
}

function liveProgress(section) {
  const bar = document.getElementById("progress-bar");
  const poll = async () => {
    let state;
    try {
      const answer = await fetch(section.dataset.url, { headers: { Accept: "application/json" } });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      state = await answer.json();
    } catch (error) {
      window.setTimeout(poll, 5000);  // the server is busy or restarting: try again later
      return;
    }
    for (const field of document.querySelectorAll("[data-field]")) {
      const value = state[field.dataset.field];
      if (field.dataset.format === "duration") field.textContent = duration(value);
      else if (field.dataset.field === "percent") field.textContent = `${value}%`;
      else field.textContent = value;
    }
    bar.value = state.percent;
    bar.textContent = `${state.percent}%`;
    section.dataset.status = state.status;
    showControls(section, state);
    const hint = document.getElementById("failures-hint");
    if (hint && state.failed + state.bounced > 0) hint.hidden = false;
    const badge = document.querySelector("#campaign-status .badge");
    if (badge) {
      badge.textContent = state.status;
      badge.className = `badge badge-${state.status}`;
    }
    if (state.status === "sending" || state.status === "paused" || state.pending > 0) {
      window.setTimeout(poll, 1000);
    }
  };
  showControls(section, { status: section.dataset.status, failed: Number(document.getElementById("count-failed").textContent) });
  poll();
}

// Times in the console show in the person's own zone: the server reads it from this cookie
// (set on the login page already, so every console page has it), and forms that take a
// date and time send the zone they were shown in.
function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return "";
  }
}

function useBrowserZone() {
  const zone = browserZone();
  if (!zone) return;
  const cookie = `console_zone=${encodeURIComponent(zone)}`;
  if (!document.cookie.split("; ").includes(cookie)) {
    document.cookie = `${cookie}; path=/admin; max-age=31536000; samesite=lax`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  useBrowserZone();
  const compose = document.getElementById("compose");
  if (compose) liveAudience(compose);
  const progress = document.getElementById("progress");
  if (progress) liveProgress(progress);
});
