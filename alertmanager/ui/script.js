// plantwatch's Alertmanager UI (see index.html): alert groups and silences from the v2 API, refreshed every 5 s.
"use strict";

const api = (path) => fetch("api/v2/" + path).then((r) => (r.ok ? r.json() : Promise.reject(r.statusText)));
const HIDDEN = new Set(["alertname", "grafana_folder"]);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (node.className = v) : node.setAttribute(k, v)));
  children.flat().forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
  return node;
}

const labels = (set) =>
  Object.entries(set || {})
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`));

function link(url, text) {
  return url ? el("a", { href: url, target: "_blank" }, text) : "";
}

function alertRow(alert) {
  const state = alert.status.state;
  const why = state === "suppressed"
    ? ` (${alert.status.silencedBy.length ? "silenced" : "inhibited"})`
    : "";
  const a = alert.annotations || {};
  return el("tr", { class: "alert" },
    el("td", {}, el("strong", {}, alert.labels.alertname)),
    el("td", { class: `state-${state}` }, state + why),
    el("td", {}, labels(alert.labels)),
    el("td", {}, a.summary || ""),
    el("td", {}, new Date(alert.startsAt).toLocaleString()),
    el("td", {}, link(a.dashboard_url, "dashboard"), " ", link(a.runbook_url, "runbook")));
}

function renderGroups(groups) {
  const box = document.getElementById("alerts");
  box.replaceChildren();
  let total = 0;
  groups.filter((g) => g.alerts.length).forEach((group) => {
    total += group.alerts.length;
    const title = Object.entries(group.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "(no grouping labels)";
    box.append(el("div", { class: "group" },
      el("div", { class: "title" }, `${title} - receiver ${group.receiver.name}`),
      el("table", {}, group.alerts.map(alertRow))));
  });
  if (!total) box.append(el("p", { class: "empty" }, "No alerts."));
  document.getElementById("count").textContent = `(${total})`;
}

function renderSilences(silences) {
  const box = document.getElementById("silences");
  const live = silences.filter((s) => s.status.state !== "expired");
  box.replaceChildren(live.length
    ? el("table", {},
        el("tr", {}, ["state", "matchers", "until", "by", "comment"].map((h) => el("th", {}, h))),
        live.map((s) => el("tr", { class: "silence" },
          el("td", {}, s.status.state),
          el("td", {}, s.matchers.map((m) => el("span", { class: "label" }, `${m.name}${m.isEqual === false ? "!" : ""}${m.isRegex ? "=~" : "="}${m.value}`))),
          el("td", {}, new Date(s.endsAt).toLocaleString()),
          el("td", {}, s.createdBy),
          el("td", {}, s.comment))))
    : el("p", { class: "empty" }, "No silences."));
}

async function refresh() {
  try {
    const [status, groups, silences] = await Promise.all([
      api("status"), api("alerts/groups?active=true&silenced=true&inhibited=true"), api("silences"),
    ]);
    document.getElementById("status").textContent =
      `version ${status.versionInfo.version}, up since ${new Date(status.uptime).toLocaleString()}`;
    renderGroups(groups);
    renderSilences(silences);
  } catch (err) {
    document.getElementById("status").textContent = `API error: ${err}`;
  }
}

refresh();
setInterval(refresh, 5000);
