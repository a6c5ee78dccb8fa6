"use strict";
// The emulator's chat page: acts as a client app for one user at a time.
const $ = (sel) => document.querySelector(sel);
const state = { user: null, accounts: [], groups: [], current: null, events: null, unread: new Set(), typingTimer: null };

// this run's token, put in the page by the server: state-changing calls must carry it
const TOKEN = document.querySelector('meta[name="timbridge-token"]').content;

async function api(path, body) {
  const headers = { "Content-Type": "application/json", "X-Timbridge-Token": TOKEN };
  const init = body === undefined ? {} : { method: "POST", headers, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail || data.error || res.statusText);
  return data;
}

function showError(err) { $("#error").textContent = err ? String(err.message || err) : ""; }
function nick(id) { const a = state.accounts.find((x) => x.id === id); return a ? a.nick : id; }
function convId(c) { return c.kind + ":" + c.id; }

async function loadState() {
  const data = await api("/api/state" + (state.user ? "?user=" + encodeURIComponent(state.user) : ""));
  $("#app-id").textContent = "SDKAppID " + data.sdkappid;
  state.accounts = data.accounts;
  state.groups = state.user ? data.groups : [];
  const select = $("#user-select");
  const people = state.accounts.filter((a) => !a.robot);
  select.innerHTML = "";
  for (const a of people) select.add(new Option(a.nick === a.id ? a.id : a.nick + " (" + a.id + ")", a.id, false, a.id === state.user));
  if (!state.user && people.length) { state.user = people[0].id; select.value = state.user; return switchUser(state.user); }
  renderConversations();
  renderGroupForm();
  if (!state.current) {  // open the first robot's chat: that is why one comes here
    const robot = conversations().find((c) => c.robot);
    if (robot) await openConversation(robot);
  }
}

function conversations() {
  const list = [];
  for (const a of state.accounts) if (a.id !== state.user) list.push({ kind: "c2c", id: a.id, name: a.nick, robot: a.robot });
  for (const g of state.groups) list.push({ kind: "group", id: g.id, name: g.name, members: g.members });
  list.sort((x, y) => (y.robot === true) - (x.robot === true));
  return list;
}

function renderConversations() {
  const ul = $("#conversations");
  ul.innerHTML = "";
  for (const c of conversations()) {
    const li = document.createElement("li");
    li.dataset.conv = convId(c);
    li.innerHTML = "<span class=name></span><span class=kind></span>";
    li.querySelector(".name").textContent = c.name;
    li.querySelector(".kind").textContent = c.kind === "group" ? "group" : c.robot ? "robot" : "user";
    if (state.current && convId(state.current) === convId(c)) li.classList.add("active");
    if (state.unread.has(convId(c))) li.classList.add("unread");
    li.onclick = () => openConversation(c);
    ul.appendChild(li);
  }
}

function renderGroupForm() {
  const box = $("#group-members");
  box.innerHTML = "<legend>members</legend>";
  for (const a of state.accounts) {
    if (a.id === state.user) continue;
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox"; input.value = a.id; input.checked = a.robot;
    label.append(input, " " + a.nick + (a.robot ? " (robot)" : ""));
    box.appendChild(label);
  }
}

function renderMentions() {
  const bar = $("#mentions");
  bar.innerHTML = "";
  if (!state.current || state.current.kind !== "group") return;
  for (const id of state.current.members) {
    const a = state.accounts.find((x) => x.id === id);
    if (!a || !a.robot) continue;
    const b = document.createElement("button");
    b.type = "button"; b.className = "mention"; b.dataset.robot = id; b.textContent = "@" + a.nick;
    b.onclick = () => { const t = $("#text"); t.value = "@" + id + " " + t.value; t.focus(); };
    bar.appendChild(b);
  }
}

function messageBelongs(m) {
  const c = state.current;
  if (!c) return false;
  if (c.kind === "group") return m.group === c.id;
  return m.kind === "c2c" && (m.from === c.id || m.to === c.id);
}

// Robots answer in Markdown, as Tencent's TUIKit shows it: rendered by marked, with any HTML in
// the text shown as text (never as markup), and the result sanitised by DOMPurify all the same.
// People's messages are plain text.
const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
marked.use({ gfm: true, breaks: true, renderer: { html(token) { return escapeHtml(token.text || token.raw || ""); } } });

function isRobot(id) { const a = state.accounts.find((x) => x.id === id); return Boolean(a && a.robot); }

function showText(el, m) {
  const markdown = isRobot(m.from);
  el.classList.toggle("md", markdown);
  if (markdown) el.innerHTML = DOMPurify.sanitize(marked.parse(m.text));
  else el.textContent = m.text;
}

function renderMessage(m) {
  let li = document.querySelector('.message[data-key="' + CSS.escape(m.key) + '"]');
  if (!li) {
    li = document.createElement("li");
    li.className = "message";
    li.dataset.key = m.key;
    li.innerHTML = "<div class=from></div><div class=text></div><div class=edited></div><button class=recall type=button hidden>Recall</button>";
    li.querySelector(".recall").addEventListener("click", () => recall(m.id));
    $("#messages").appendChild(li);
  }
  li.classList.toggle("mine", m.from === state.user);
  li.classList.toggle("streaming", m.streaming);
  li.classList.toggle("recalled", Boolean(m.recalled));
  li.dataset.from = m.from;
  li.querySelector(".from").textContent = m.from_nick;
  if (m.recalled) li.querySelector(".text").textContent = (m.from === state.user ? "You" : m.from_nick) + " recalled a message";
  else showText(li.querySelector(".text"), m);
  li.querySelector(".edited").textContent = m.edits && !m.streaming && !m.recalled ? "edited" : "";
  li.querySelector(".recall").hidden = m.from !== state.user || Boolean(m.recalled);
  const box = $("#messages");
  box.scrollTop = box.scrollHeight;
}

async function recall(id) {
  try { renderMessage(await api("/api/recall", { user: state.user, id })); showError(null); } catch (e) { showError(e); }
}

async function openConversation(c) {
  state.current = c;
  state.unread.delete(convId(c));
  $("#chat-title").textContent = c.kind === "group" ? c.name + " · " + c.members.length + " members" : c.name;
  $("#messages").innerHTML = "";
  $("#typing").hidden = true;
  renderConversations();
  renderMentions();
  const q = "user=" + encodeURIComponent(state.user) + (c.kind === "group" ? "&group=" + encodeURIComponent(c.id) : "&peer=" + encodeURIComponent(c.id));
  try { for (const m of await api("/api/history?" + q)) renderMessage(m); showError(null); } catch (e) { showError(e); }
  $("#text").focus();
}

function onEvent(ev) {
  const data = JSON.parse(ev.data);
  const m = data.message;
  if (data.type === "group" || data.type === "account") { loadState(); return; }
  if (!m) return;
  if (data.type === "typing") {
    if (messageBelongs(m) && m.from !== state.user) {
      const t = $("#typing");
      t.hidden = !data.typing; t.textContent = nick(m.from) + " is typing…";
      clearTimeout(state.typingTimer);
      if (data.typing) state.typingTimer = setTimeout(() => { t.hidden = true; }, 10000);
    }
    return;
  }
  if (messageBelongs(m)) {
    if (m.from !== state.user) $("#typing").hidden = true;
    renderMessage(m);
  } else if (data.type === "message" && m.from !== state.user) {
    state.unread.add(m.group ? "group:" + m.group : "c2c:" + m.from);
    renderConversations();
  }
}

async function switchUser(id) {
  state.user = id; state.current = null; state.unread.clear();
  $("#messages").innerHTML = ""; $("#chat-title").textContent = "Pick a chat"; $("#mentions").innerHTML = "";
  if (state.events) state.events.close();
  state.events = new EventSource("/api/events?user=" + encodeURIComponent(id));
  state.events.onmessage = onEvent;
  await loadState();
}

$("#user-select").onchange = (e) => switchUser(e.target.value);
$("#who").onsubmit = async (e) => {
  e.preventDefault();
  const id = $("#new-user").value.trim();
  if (!id) return;
  try { await api("/api/users", { id, nick: id }); $("#new-user").value = ""; await switchUser(id); showError(null); } catch (err) { showError(err); }
};
$("#new-group").onsubmit = async (e) => {
  e.preventDefault();
  const members = [...document.querySelectorAll("#group-members input:checked")].map((x) => x.value);
  try {
    const g = await api("/api/groups", { name: $("#group-name").value.trim(), owner: state.user, members });
    $("#group-name").value = "";
    await loadState();
    await openConversation({ kind: "group", id: g.id, name: g.name, members: g.members });
    showError(null);
  } catch (err) { showError(err); }
};
$("#composer").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("#text").value;
  if (!text.trim() || !state.current) return;
  const body = { from: state.user, text };
  if (state.current.kind === "group") body.group = state.current.id; else body.to = state.current.id;
  try { renderMessage(await api("/api/send", body)); $("#text").value = ""; showError(null); } catch (err) { showError(err); }
};
$("#text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#composer").requestSubmit(); }
});

loadState().catch(showError);
// Chromium lays the members' fieldset out at zero height when the form opens after the text box
// had the focus: lay it out again each time the form opens.
$("#group-form").addEventListener("toggle", (e) => {
  if (!e.target.open) return;
  const box = $("#group-members");
  box.style.display = "none"; void box.offsetHeight; box.style.display = "";
});
