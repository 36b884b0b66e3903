// mlcd's web UI: plain TypeScript over the mlcd API (docs/api.md). Pages
// are hash routes — #/apps, #/apps/<namespace>/<name>, #/models,
// #/models/<name> — so the Go server serves one index.html. Every text
// goes in through textContent (never innerHTML).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const main = document.getElementById("app") as HTMLElement;
const TOKEN_KEY = "mlcd.token";
let refreshTimer: number | undefined;

// h builds an element: h("a", {href: "#"}, "text", child…).
function h(tag: string, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: (Node | string | null | undefined)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v as EventListener);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

class APIError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

async function api(path: string, init: RequestInit = {}): Promise<Json> {
  const token = localStorage.getItem(TOKEN_KEY) ?? "";
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  // Every non-GET is JSON: the API refuses other POSTs (a web page could
  // send them cross-site without asking).
  if (init.body || (init.method ?? "GET") !== "GET") headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...init, headers });
  const text = await resp.text();
  let body: Json = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: text };
  }
  if (!resp.ok) throw new APIError(resp.status, body?.error ?? resp.statusText);
  return body;
}

const short = (sha: string | undefined) => (sha ?? "").slice(0, 7);
const appKey = (a: Json) => `${a.metadata.namespace}/${a.metadata.name}`;
const appPath = (ns: string, name: string) => `/api/v1/applications/${encodeURIComponent(name)}?appNamespace=${encodeURIComponent(ns)}`;
const sub = (ns: string, name: string, suffix: string) => `/api/v1/applications/${encodeURIComponent(name)}${suffix}?appNamespace=${encodeURIComponent(ns)}`;

function badge(kind: "sync" | "health" | "phase", value: string | undefined): HTMLElement {
  const v = value || "Unknown";
  return h("span", { class: `badge ${kind} s-${v.toLowerCase()}`, title: `${kind}: ${v}` }, v);
}

function section(title: string, id: string, ...children: (Node | string | null)[]): HTMLElement {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function table(headers: string[], rows: (Node | string)[][], caption?: string): HTMLElement {
  return h(
    "table",
    {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

// show replaces the page's content (null entries are left out).
function show(...nodes: (Node | string | null | undefined)[]) {
  main.replaceChildren(...nodes.filter((n): n is Node | string => n !== null && n !== undefined));
}

function fail(err: unknown) {
  if (err instanceof APIError && err.status === 401) {
    login("Your token was not accepted; enter a valid one.");
    return;
  }
  show(h("p", { class: "error", role: "alert" }, String((err as Error).message ?? err)));
}

// login asks for an API token (printed by `mlcd up`, or in its tokens file).
function login(message = "") {
  clearInterval(refreshTimer);
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true }) as HTMLInputElement;
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: (e: Event) => {
        e.preventDefault();
        localStorage.setItem(TOKEN_KEY, input.value.trim());
        route();
      },
    },
    h("h1", {}, "Sign in"),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { class: "hint" }, "`mlcd up` writes an admin token to .mlcd/api-tokens.yaml."),
    h("button", { type: "submit", id: "sign-in" }, "Sign in"),
  );
  show(form);
  input.focus();
}

// ---- Applications ----------------------------------------------------

let listState = { search: "", cont: "", prev: [] as string[] };

async function appList() {
  const q = new URLSearchParams({ limit: "50" });
  if (listState.search) q.set("search", listState.search);
  if (listState.cont) q.set("continue", listState.cont);
  const [page, models] = await Promise.all([api("/api/v1/applications?" + q), api("/api/v1/models")]);
  const search = h("input", { id: "search", type: "search", value: listState.search, placeholder: "name or project" }) as HTMLInputElement;
  search.addEventListener("change", () => {
    listState = { search: search.value, cont: "", prev: [] };
    route();
  });
  const rows = (page.items ?? []).map((a: Json) => [
    h("a", { href: `#/apps/${a.metadata.namespace}/${a.metadata.name}`, class: "app-link" }, a.metadata.name),
    a.spec.project ?? "",
    badge("sync", a.status?.sync?.status),
    badge("health", a.status?.health?.status),
    a.metadata.annotations?.["mlcd.io/model"] ?? "",
    a.metadata.annotations?.["mlcd.io/model-environment"] ?? "",
    h("span", { class: "version" }, a.metadata.annotations?.["mlcd.io/model-version"] ?? ""),
    short(a.status?.sync?.revision),
  ]);
  const pager = h(
    "div",
    { class: "pager" },
    h("button", { disabled: listState.prev.length === 0, onclick: () => { listState.cont = listState.prev.pop() ?? ""; route(); } }, "Previous"),
    h("span", {}, `${page.items?.length ?? 0} of ${page.total ?? 0}`),
    h("button", { disabled: !page.continue, onclick: () => { listState.prev.push(listState.cont); listState.cont = page.continue; route(); } }, "Next"),
  );
  const fleet = (models.items ?? []).map((m: Json) =>
    h(
      "div",
      { class: "fleet-model" },
      h("h3", {}, h("a", { href: `#/models/${m.name}` }, m.name)),
      h("ul", {}, ...m.environments.map((e: Json) => h("li", { class: "fleet-env" }, h("strong", {}, e.environment + ": "), h("span", { class: "version" }, e.version), " ", badge("health", e.health), e.blocked ? h("span", { class: "blocked", title: e.blocked }, " blocked") : null))),
    ),
  );
  show(
    h("h1", {}, "Applications"),
    section("Fleet by model", "fleet-h", fleet.length ? h("div", { class: "fleet" }, ...fleet) : h("p", {}, "No governed models yet.")),
    section("All applications", "apps-h", h("label", { for: "search" }, "Filter "), search, table(["Name", "Project", "Sync", "Health", "Model", "Environment", "Version", "Revision"], rows, "Applications"), pager),
  );
}

async function appPage(ns: string, name: string) {
  const [app, rollout, events, lineage] = await Promise.all([
    api(appPath(ns, name)),
    api(sub(ns, name, "/rollout")).catch(() => null),
    api(sub(ns, name, "/events")).catch(() => ({ items: [] })),
    api(sub(ns, name, "/lineage")).catch(() => null),
  ]);
  const st = app.status ?? {};
  const head = h(
    "div",
    { class: "app-head" },
    h("h1", {}, name),
    badge("sync", st.sync?.status),
    badge("health", st.health?.status),
    h("span", { class: "muted" }, ` ${ns} · project ${app.spec.project} · ${app.spec.source?.repoURL ?? ""} ${app.spec.source?.path ?? ""} @ ${short(st.sync?.revision)}`),
  );
  const actions = h(
    "div",
    { class: "actions" },
    h("button", { onclick: async () => { await api(sub(ns, name, "/sync"), { method: "POST", body: "{}" }).catch(fail); route(); } }, "Sync"),
    h("button", { onclick: async () => { await api(sub(ns, name, "/refresh"), { method: "POST" }).catch(fail); route(); } }, "Refresh"),
    h("button", { id: "rollback", onclick: () => rollbackDialog(ns, name) }, "Roll back…"),
  );
  const conds = (st.conditions ?? []).map((c: Json) => h("li", { class: "condition" }, h("strong", {}, c.type + ": "), c.message));
  show(
    h("p", {}, h("a", { href: "#/apps" }, "← Applications")),
    head,
    actions,
    st.health?.message ? h("p", { class: "muted" }, st.health.message) : null,
    conds.length ? section("Conditions", "cond-h", h("ul", {}, ...conds)) : null,
    rollout ? rolloutCard(ns, name, rollout) : null,
    lineage ? lineageCard(lineage) : null,
    treeCard(st.resources ?? []),
    diffCard(ns, name),
    historyCard(ns, name, st.history ?? []),
    section("Events", "events-h", table(["Time", "Type", "Reason", "Message"], (events.items ?? []).slice(0, 30).map((e: Json) => [new Date(e.time).toLocaleString(), e.type, e.reason, e.note]))),
  );
}

// treeCard shows the resources grouped by kind with health per node.
function treeCard(resources: Json[]): HTMLElement {
  const byKind = new Map<string, Json[]>();
  for (const r of resources) {
    const k = (r.group ? r.group + "/" : "") + r.kind;
    byKind.set(k, [...(byKind.get(k) ?? []), r]);
  }
  const groups = [...byKind.entries()].map(([kind, rs]) =>
    h(
      "li",
      { class: "tree-kind" },
      h("details", { open: rs.length <= 10 }, h("summary", {}, `${kind} (${rs.length})`), h("ul", {}, ...rs.map((r) => h("li", { class: "tree-node" }, `${r.namespace ? r.namespace + "/" : ""}${r.name} `, badge("sync", r.status), r.health ? badge("health", r.health.status) : null, r.health?.message ? h("span", { class: "muted" }, " " + r.health.message) : null)))),
    ),
  );
  return section("Resources", "tree-h", h("ul", { class: "tree", role: "tree" }, ...groups));
}

function diffCard(ns: string, name: string): HTMLElement {
  const out = h("div", { class: "diff" });
  const btn = h("button", {
    onclick: async () => {
      out.replaceChildren(h("p", {}, "Computing a server-side dry run…"));
      try {
        const d = await api(sub(ns, name, "/diff"));
        if (d.inSync) {
          out.replaceChildren(h("p", {}, "In sync: a sync would change nothing."));
          return;
        }
        out.replaceChildren(...(d.items ?? []).map((it: Json) => h("details", { open: true }, h("summary", {}, `${it.action ?? ""} ${it.kind} ${it.namespace ? it.namespace + "/" : ""}${it.name}`), h("pre", {}, ...String(it.diff ?? "").split("\n").map((l) => h("span", { class: l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : "" }, l + "\n"))))));
      } catch (e) {
        out.replaceChildren(h("p", { class: "error" }, String((e as Error).message)));
      }
    },
  }, "Show diff");
  return section("Live diff", "diff-h", btn, out);
}

function historyCard(ns: string, name: string, history: Json[]): HTMLElement {
  const rows = [...history].reverse().map((e: Json) => {
    const msg = h("span", { class: "commit-msg" }, "…");
    api(sub(ns, name, `/revisions/${e.revision}/metadata`))
      .then((m) => msg.replaceChildren(m.message.split("\n")[0], h("span", { class: "muted" }, " — " + m.author)))
      .catch(() => msg.replaceChildren(""));
    return [String(e.id ?? ""), short(e.revision), msg, e.deployedAt ? new Date(e.deployedAt).toLocaleString() : ""];
  });
  return section("History", "history-h", table(["ID", "Revision", "Commit", "Deployed"], rows, "Sync history, newest first"));
}

function rollbackDialog(ns: string, name: string) {
  const reason = h("textarea", { id: "rollback-reason", rows: "3", required: true }) as HTMLTextAreaElement;
  const status = h("p", { role: "status" });
  const dlg = h(
    "dialog",
    { class: "card", "aria-labelledby": "rb-h" },
    h("h2", { id: "rb-h" }, `Roll back ${name}?`),
    h("p", {}, "mlcd commits a git revert of the newest change to this app's model version (or path) on its tracked branch and syncs it."),
    h("label", { for: "rollback-reason" }, "Reason (goes into the commit message)"),
    reason,
    status,
    h(
      "div",
      { class: "actions" },
      h("button", { id: "rollback-confirm", onclick: async () => {
        status.textContent = "Reverting…";
        try {
          const r = await api(sub(ns, name, "/rollback"), { method: "POST", body: JSON.stringify({ reason: reason.value }) });
          status.textContent = `Reverted ${short(r.reverted)} (${r.subject}) with ${short(r.commit)} on ${r.branch}.`;
          setTimeout(() => { (dlg as HTMLDialogElement).close(); dlg.remove(); route(); }, 800);
        } catch (e) {
          status.textContent = String((e as Error).message);
        }
      } }, "Roll back"),
      h("button", { onclick: () => { (dlg as HTMLDialogElement).close(); dlg.remove(); } }, "Cancel"),
    ),
  ) as HTMLDialogElement;
  document.body.append(dlg);
  dlg.showModal();
  reason.focus();
}

function rolloutCard(ns: string, name: string, mr: Json): HTMLElement {
  const s = mr.status ?? {};
  const steps = mr.spec.strategy?.steps ?? [];
  const stepList = h("ol", { class: "steps", start: "0" }, ...steps.map((st: Json, i: number) => {
    const what = st.setWeight !== undefined ? `setWeight ${st.setWeight}` : st.pause ? `pause ${st.pause.duration ?? "(until promoted)"}` : st.analysis ? `analysis ${(st.analysis.templates ?? []).map((t: Json) => t.templateName).join(", ")}` : "";
    const cls = i < s.currentStepIndex ? "done" : i === s.currentStepIndex ? "current" : "";
    return h("li", { class: cls }, what);
  }));
  const plots = (s.analysis ?? []).map((run: Json) => h("div", { class: "run" }, h("h3", {}, `Analysis ${run.name}: ${run.phase}`), run.message ? h("p", { class: "muted" }, run.message) : null, ...(run.metrics ?? []).map((m: Json) => metricPlot(m))));
  const act = (a: string) => async () => { await api(sub(ns, name, "/rollout/" + a), { method: "POST" }).catch(fail); route(); };
  return section(
    "Canary rollout",
    "rollout-h",
    h("p", {}, `${mr.spec.model} ${mr.spec.environment}: ${mr.spec.stableVersion} → ${mr.spec.canaryVersion} `, badge("phase", s.phase), s.pauseReason ? ` (${s.pauseReason})` : ""),
    h("p", {}, `Weight ${s.weight ?? 0}% · canary ${s.canaryReadyReplicas ?? 0}/${s.canaryReplicas ?? 0} ready · stable ${s.stableReadyReplicas ?? 0}/${s.stableReplicas ?? 0} ready`),
    s.message ? h("p", { class: "muted" }, s.message) : null,
    s.revertCommit ? h("p", {}, `Reverted in Git by ${short(s.revertCommit)}`) : null,
    stepList,
    h("div", { class: "actions" }, h("button", { onclick: act("promote") }, "Promote"), h("button", { onclick: act("abort") }, "Abort"), h("button", { onclick: act("retry") }, "Retry")),
    ...plots,
  );
}

// metricPlot draws a metric's measurements over time (numbers only) and
// lists them.
function metricPlot(m: Json): HTMLElement {
  const ms = m.measurements ?? [];
  const box = h("div", { class: "plot", role: "img", "aria-label": `${m.name} measurements over time` });
  const xs: number[] = [];
  const ys: number[] = [];
  for (const x of ms) {
    const v = parseFloat(String(x.value).replace(/^\[|\]$/g, ""));
    if (!Number.isNaN(v)) {
      xs.push(new Date(x.startedAt).getTime() / 1000);
      ys.push(v);
    }
  }
  if (xs.length > 1) {
    requestAnimationFrame(() => new uPlot({ width: Math.min(560, main.clientWidth - 40), height: 160, series: [{}, { label: m.name, stroke: "#2563eb", width: 2, points: { show: true } }], axes: [{}, {}] }, [xs, ys], box));
  }
  return h("div", { class: "metric" }, h("h4", {}, `${m.name}: ${m.phase} (${m.count} measured, ${m.failed} failed, ${m.inconclusive} inconclusive)`), box, table(["Time", "Phase", "Value"], ms.map((x: Json) => [new Date(x.startedAt).toLocaleTimeString(), x.phase, x.value ?? x.message ?? ""])));
}

function lineageCard(l: Json): HTMLElement {
  const commit = l.commit ? `${short(l.revision)} “${l.commit.message.split("\n")[0]}” by ${l.commit.author}` : short(l.revision);
  return section(
    "Lineage",
    "lineage-h",
    h("ol", { class: "lineage" },
      h("li", {}, h("strong", {}, "Commit "), commit),
      l.model ? h("li", {}, h("strong", {}, "Model version "), `${l.model} ${l.version}`) : null,
      l.runID ? h("li", {}, h("strong", {}, "Registry run "), l.runID) : null,
      h("li", {}, h("strong", {}, "Pods "), ...(l.workloads ?? []).map((w: Json) => h("div", {}, `${w.name} (${w.version || "no version"}): ${(w.pods ?? []).filter((p: Json) => p.ready).length}/${(w.pods ?? []).length} ready`))),
    ),
  );
}

// ---- Models ----------------------------------------------------------

async function modelList() {
  const models = await api("/api/v1/models");
  show(
    h("h1", {}, "Models"),
    table(["Model", "Environments"], (models.items ?? []).map((m: Json) => [h("a", { href: `#/models/${m.name}` }, m.name), m.environments.map((e: Json) => `${e.environment}: ${e.version}`).join(" · ")]), "Models and the version each environment runs"),
  );
}

async function modelPage(name: string) {
  const m = await api(`/api/v1/models/${encodeURIComponent(name)}`);
  const metricNames = [...new Set<string>((m.versions ?? []).flatMap((v: Json) => Object.keys(v.metrics ?? {})))].sort();
  show(
    h("p", {}, h("a", { href: "#/models" }, "← Models")),
    h("h1", {}, name),
    section("Environments", "envs-h", table(["Environment", "Application", "Version in Git", "Sync", "Health", "Blocked because"], (m.environments ?? []).map((e: Json) => {
      const [ns, app] = e.app.split("/");
      return [e.environment, h("a", { href: `#/apps/${ns}/${app}` }, app), h("span", { class: "version" }, e.version), badge("sync", e.sync), badge("health", e.health), e.blocked ?? ""];
    }), "Which version each environment runs")),
    section("Registry versions", "versions-h", table(["Version", "Tag", "Status", "Aliases", ...metricNames], (m.versions ?? []).map((v: Json) => [v.version, v.tag ?? "", v.status, (v.aliases ?? []).join(", "), ...metricNames.map((k) => (v.metrics?.[k] ?? "").toString())]), "Versions with their logged metrics")),
  );
}

// ---- Router ----------------------------------------------------------

async function route() {
  clearInterval(refreshTimer);
  if (!localStorage.getItem(TOKEN_KEY)) {
    login();
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  document.getElementById("nav-apps")?.toggleAttribute("aria-current", parts[0] !== "models");
  document.getElementById("nav-models")?.toggleAttribute("aria-current", parts[0] === "models");
  const render = async () => {
    try {
      if (parts[0] === "models" && parts[1]) await modelPage(parts[1]);
      else if (parts[0] === "models") await modelList();
      else if (parts[0] === "apps" && parts[2]) await appPage(parts[1], parts[2]);
      else await appList();
      document.body.dataset.loaded = location.hash || "#/apps";
    } catch (e) {
      fail(e);
    }
  };
  await render();
  currentRender = render;
  // The app pages follow the live stream (streamApps); the model pages
  // read the registry, which does not stream: they refresh every 15 s.
  if (parts[0] === "models") refreshTimer = window.setInterval(() => { if (idle()) render(); }, 15000);
}

// ---- Live updates ----------------------------------------------------

let currentRender: (() => Promise<void>) | undefined;
let pending: number | undefined;

// idle: no dialog, open diff or focused input that a re-render would lose.
const idle = () => !document.querySelector("dialog[open]") && !document.querySelector(".diff details[open]") && document.activeElement?.tagName !== "INPUT";

// rerender coalesces a burst of changes into one render 300 ms later.
function rerender() {
  if (pending !== undefined) return;
  pending = window.setTimeout(() => {
    pending = undefined;
    if (!idle()) { rerender(); return; }
    currentRender?.();
  }, 300);
}

// streamApps reads the server-sent events of GET
// /api/v1/stream/applications (fetch, not EventSource, so the bearer
// token goes in a header) and re-renders on every Application change;
// it reconnects with backoff when the stream ends.
async function streamApps() {
  const live = document.getElementById("live");
  let backoff = 1000;
  for (;;) {
    const token = localStorage.getItem(TOKEN_KEY);
    if (!token) { await new Promise((r) => setTimeout(r, 1000)); continue; }
    {
      try {
        const resp = await fetch("/api/v1/stream/applications", { headers: { Accept: "text/event-stream", Authorization: "Bearer " + token } });
        if (resp.ok && resp.body) {
          if (live) { live.textContent = "● live"; live.title = "updates as Applications change"; }
          backoff = 1000;
          const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let end;
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, end);
              buf = buf.slice(end + 2);
              if (/^event: application$/m.test(block)) rerender();
            }
          }
        }
      } catch {
        // fall through to reconnect
      }
    }
    if (live) { live.textContent = "○ reconnecting"; live.title = "the live stream is down; retrying"; }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 30000);
  }
}

api("/api/v1/session")
  .then((s) => { (document.getElementById("who") as HTMLElement).textContent = `${s.name} (${s.role})`; })
  .catch(() => undefined);
window.addEventListener("hashchange", route);
route();
streamApps();
