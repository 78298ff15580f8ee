// OmniBiz web console: the owner inbox and the customer chat in one module.
//
// No framework: the two pages are a few lists and one message log, so the
// DOM is updated directly: about 40 KiB of our own HTML, CSS and JavaScript
// (uncompressed) plus the official socket.io-client bundle (40 KiB).
//
// Delivery rules it follows (README, "Delivery contract"): messages are
// kept per conversation by `seq`; a rejoin after a reconnect passes the
// highest `seq` seen as `lastSeq`, so the server replays what was missed;
// every send carries a `clientMessageId`, so a send retried over REST after
// a socket timeout is stored once. While the socket is down the console
// sends over REST and polls, and switches back when the socket returns.

import { io } from "./vendor/socket.io.esm.min.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "omnibiz.console.token";
const PAGE = 50; // messages per page
const POLL_MS = 3000; // REST polling while the socket is down
const SEARCH_DEBOUNCE_MS = 300;
const TYPING_IDLE_MS = 3000; // the seed's typing timeout
const ACK_TIMEOUT_MS = 5000;

const state = {
  token: null,
  me: null, // {id, name, role}
  owner: false,
  socket: null,
  live: false,
  tab: "conversations",
  conversations: new Map(), // id -> ConversationView
  convOrder: [],
  convCursor: null,
  customers: [],
  customerCursor: null,
  open: null, // see openState()
  pollTimer: null,
  typingSent: 0,
  typingTimer: null,
  theirTypingTimer: null,
  quickReplies: new Map(), // shortcut -> content (owners)
};

// ---------- small helpers ----------

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(`The server could not be reached (${e.message}).`, 0, "NETWORK");
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok || !data || data.success === false) {
    const msg = data?.message || `${res.status} ${res.statusText}`;
    throw new ApiError(msg, res.status, data?.code);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function showError(node, message) {
  node.textContent = message;
  node.hidden = !message;
}

function randomId() {
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(12));
  return "c-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? timeFmt.format(d) : dateFmt.format(d);
}

function toast(text) {
  const t = el("div", { class: "toast", text });
  $("toasts").append(t);
  setTimeout(() => t.remove(), 5000);
}

function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

// ---------- sign in ----------

function boot() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const fromLink = frag.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (!t) return showError($("signin-error"), "Paste a token first.");
    signIn(t);
  });
  $("token").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("signin-form").requestSubmit();
    }
  });
  $("signout").addEventListener("click", signOut);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else showSignIn();
}

function showSignIn(error) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("conn").hidden = true;
  $("who").textContent = "";
  showError($("signin-error"), error || "");
  $("token").focus();
}

async function signIn(token) {
  state.token = token;
  let me;
  try {
    me = await api("GET", "/api/messages/me");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    return showSignIn(e.status === 401 ? `This token was refused: ${e.message}` : `Could not sign in: ${e.message}`);
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  showError($("signin-error"), "");
  state.me = me;
  state.owner = me.role !== "customer";
  $("signin").hidden = true;
  $("app").hidden = false;
  $("app").classList.toggle("customer", !state.owner);
  $("app").dataset.view = "list";
  $("signout").hidden = false;
  $("who").textContent = `${me.name} · ${state.owner ? "business owner" : "customer"}`;
  wireChat();
  if (state.owner) {
    wireInbox();
    await loadConversations();
    loadQuickReplies();
  } else {
    await openCustomerChat();
  }
  connectSocket();
}

// An owner's quick replies: typing `/shortcut` and sending sends the reply.
async function loadQuickReplies() {
  try {
    const r = await api("GET", "/api/quick-replies");
    state.quickReplies = new Map(r.quickReplies.map((q) => [q.shortcut, q.content]));
    if (state.quickReplies.size) {
      $("compose").placeholder = `Write a message… (Enter sends; quick replies: ${[...state.quickReplies.keys()].map((k) => `/${k}`).join(" ")})`;
    }
  } catch {
    state.quickReplies = new Map(); // the console works without them
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

// ---------- connection state, socket and REST fallback ----------

function setConn(mode, detail) {
  const c = $("conn");
  c.hidden = false;
  c.dataset.state = mode;
  c.textContent =
    mode === "live" ? "Live" : mode === "rest" ? "Offline — sending over REST" : detail || "Connecting…";
}

function connectSocket() {
  setConn("connecting");
  const socket = io(document.querySelector('meta[name="omnibiz-socket-url"]').content || undefined, {
    auth: { token: state.token },
    reconnectionDelayMax: 5000,
  });
  state.socket = socket;
  socket.on("connect", onConnected);
  socket.on("disconnect", (reason) => {
    state.live = false;
    setConn("rest");
    startPolling();
    if (reason === "io server disconnect") socket.connect(); // a draining server: come back elsewhere
  });
  socket.on("connect_error", (err) => {
    state.live = false;
    setConn("rest");
    startPolling();
    if (!socket.active) {
      // The server refused this client (e.g. its token); it will not retry by itself.
      showError($("chat-error"), `Live updates refused: ${err.message}. Messages still go over REST.`);
    }
  });
  socket.on("message_received", onMessage);
  socket.on("message_sent", onMessage);
  socket.on("message_status", onStatus);
  socket.on("messages_read", onRead);
  socket.on("new_message_notification", onNotification);
  socket.on("user_typing", (p) => onTyping(p, true));
  socket.on("user_stopped_typing", (p) => onTyping(p, false));
  socket.on("presence", onPresence);
  socket.on("conversation_updated", onConversationUpdated);
  socket.on("message_updated", onMessageChanged);
  socket.on("message_deleted", onMessageDeleted);
  socket.on("message_error", (p) => showError($("chat-error"), p?.error || "The server refused a message."));
}

async function onConnected() {
  state.live = true;
  stopPolling();
  setConn("live");
  showError($("chat-error"), "");
  const o = state.open;
  if (o?.id) {
    joinOpen(); // replays missed messages after lastSeq
    refreshOpen().catch(() => {}); // presence, and reads that happened meanwhile
  }
  // Catch up on what happened while the socket was down.
  if (state.owner) loadConversations().catch(() => {});
  else if (!o?.id) openCustomerChat().catch(() => {});
}

function joinOpen() {
  const o = state.open;
  if (!o?.id || !state.socket?.connected) return;
  state.socket.emit("join_conversation", { conversationId: o.id, lastSeq: o.highest }, (ack) => {
    if (ack && ack.ok === false) showError($("chat-error"), ack.error || "Could not join the conversation.");
  });
}

// Brings the open conversation up to date over REST: messages after the
// highest seq shown (page by page), the other side's presence, and — while
// some of our messages are not yet shown as read — their current statuses.
async function refreshOpen() {
  const o = state.open;
  if (!o?.id) return;
  let more = true;
  while (more && state.open === o) {
    const r = await api("GET", `/api/messages/conversations/${o.id}?after=${o.highest}&limit=${PAGE}`);
    setPresence(r.conversation.isOnline);
    for (const m of r.messages) onMessage(m);
    more = r.hasMore && r.messages.length > 0;
  }
  const unread = [...o.bySeq.values()].some((li) => li.classList.contains("mine") && li.dataset.status !== "read");
  if (unread && state.open === o) {
    const r = await api("GET", `/api/messages/conversations/${o.id}?limit=${PAGE}`);
    for (const m of r.messages) onMessage(m, { quiet: true });
  }
}

function startPolling() {
  if (state.pollTimer) return;
  state.pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

async function poll() {
  if (state.live) return stopPolling();
  try {
    const o = state.open;
    if (o?.id) {
      await refreshOpen();
    } else if (!state.owner) {
      await openCustomerChat();
    }
    if (state.owner) await loadConversations();
  } catch (e) {
    if (e.status === 401) return showSignIn(`Signed out: ${e.message}`);
    setConn("rest");
  }
}

// ---------- owner inbox: tabs, lists, search ----------

function wireInbox() {
  const tabs = [$("tab-conversations"), $("tab-customers")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    state.tab = tab === tabs[0] ? "conversations" : "customers";
    reloadTab();
  };
  for (const t of tabs) {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
      const next = tabs[(tabs.indexOf(t) + 1) % 2];
      next.focus();
      select(next);
    });
  }
  $("search").addEventListener("input", debounce(reloadTab, SEARCH_DEBOUNCE_MS));
  $("conversations-more").addEventListener("click", () => loadConversations({ more: true }));
  $("customers-more").addEventListener("click", () => loadCustomers({ more: true }));
  $("back").addEventListener("click", () => {
    $("app").dataset.view = "list";
    $("search").focus();
  });
  for (const id of ["conv-status", "conv-priority"]) $(id).addEventListener("change", saveMeta);
  $("conv-tags").addEventListener("change", saveMeta);
  $("conv-meta").addEventListener("submit", (e) => {
    e.preventDefault();
    saveMeta();
  });
}

function reloadTab() {
  const run = state.tab === "conversations" ? loadConversations() : loadCustomers();
  run.catch(() => {});
  if (state.tab === "conversations") searchMessages().catch(() => {});
}

// Message text search (GET /api/messages/search) under the conversation
// list; the matches come as character ranges and are marked with <mark>
// elements, never by putting the user's text into HTML.
async function searchMessages() {
  const q = $("search").value.trim();
  const box = $("message-results-box");
  if (!q) {
    box.hidden = true;
    return;
  }
  const r = await api("GET", `/api/messages/search?${new URLSearchParams({ q, limit: "20" })}`);
  if ($("search").value.trim() !== q) return; // typed on meanwhile
  $("message-results").replaceChildren(
    ...r.results.map((hit) => {
      const text = [...hit.snippet];
      const parts = [];
      let at = 0;
      for (const h of hit.highlights) {
        if (h.start > at) parts.push(text.slice(at, h.start).join(""));
        parts.push(el("mark", { text: text.slice(h.start, h.end).join("") }));
        at = h.end;
      }
      if (at < text.length) parts.push(text.slice(at).join(""));
      return el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "item hit", onclick: () => openConversation(hit.conversationId) },
          el("span", { class: "name", text: hit.conversationName }),
          el("span", { class: "time", text: when(hit.message.timestamp) }),
          el("span", { class: "preview" }, ...parts),
        ),
      );
    }),
  );
  box.hidden = false;
  $("message-results-title").textContent = r.results.length ? "Messages" : "No messages match";
}

function query(cursor) {
  const p = new URLSearchParams();
  const q = $("search").value.trim();
  if (q) p.set("q", q);
  if (cursor) p.set("cursor", cursor);
  const s = p.toString();
  return s ? `?${s}` : "";
}

async function loadConversations({ more = false } = {}) {
  if (!state.owner) return;
  let r;
  try {
    r = await api("GET", `/api/messages/conversations${query(more ? state.convCursor : null)}`);
  } catch (e) {
    showError($("list-error"), `Conversations could not be loaded: ${e.message}`);
    throw e;
  }
  showError($("list-error"), "");
  if (!more) {
    state.conversations = new Map();
    state.convOrder = [];
  }
  for (const c of r.conversations) {
    if (state.open?.id === c.id) c.unreadCount = 0; // being read right now
    state.conversations.set(c.id, c);
    state.convOrder.push(c.id);
  }
  state.convCursor = r.nextCursor;
  renderConversations();
}

function renderConversations() {
  const list = $("conversation-list");
  list.replaceChildren(
    ...state.convOrder.map((id) => {
      const c = state.conversations.get(id);
      const current = state.open?.id === id;
      const chips = [];
      if (c.status !== "active") chips.push(el("span", { class: "chip", text: c.status }));
      if (c.priority !== "normal") chips.push(el("span", { class: `chip ${c.priority}`, text: c.priority }));
      for (const t of c.tags || []) chips.push(el("span", { class: "chip", text: `#${t}` }));
      const label = `${c.name}${c.isOnline ? ", online" : ""}${c.unreadCount ? `, ${c.unreadCount} unread` : ""}`;
      return el(
        "li",
        { "data-conversation": id },
        el(
          "button",
          { type: "button", class: "item", "aria-current": current ? "true" : null, "aria-label": label, onclick: () => openConversation(id) },
          el("span", { class: `dot${c.isOnline ? " online" : ""}`, "aria-hidden": "true" }),
          el("span", { class: "name", text: c.name }),
          c.unreadCount
            ? el("span", { class: "badge", "data-unread": String(c.unreadCount), text: String(c.unreadCount) })
            : el("span", { class: "time", text: when(c.lastMessageTime) }),
          el("span", { class: "preview", text: c.lastMessage || "No messages yet" }),
          chips.length ? el("span", { class: "tagline" }, ...chips) : null,
        ),
      );
    }),
  );
  $("conversations-empty").hidden = state.convOrder.length > 0;
  $("conversations-more").hidden = !state.convCursor;
  const total = [...state.conversations.values()].reduce((n, c) => n + (c.unreadCount || 0), 0);
  $("total-unread").hidden = total === 0;
  $("total-unread").textContent = String(total);
  $("total-unread").setAttribute("aria-label", `${total} unread`);
}

async function loadCustomers({ more = false } = {}) {
  let r;
  try {
    r = await api("GET", `/api/messages/customers${query(more ? state.customerCursor : null)}`);
  } catch (e) {
    showError($("list-error"), `Customers could not be loaded: ${e.message}`);
    throw e;
  }
  showError($("list-error"), "");
  state.customers = more ? state.customers.concat(r.customers) : r.customers;
  state.customerCursor = r.nextCursor;
  const list = $("customer-list");
  list.replaceChildren(
    ...state.customers.map((c) => {
      const stats = [
        `${c.totalOrders} orders`,
        `${money.format(c.totalSpent)} spent`,
        `last login ${c.lastLogin ? when(c.lastLogin) : "never"}`,
        `joined ${when(c.joinedDate)}`,
      ].join(" · ");
      const action = c.hasConversation
        ? `Open chat${c.unreadCount ? ` (${c.unreadCount} unread)` : ""}`
        : "Start conversation";
      return el(
        "li",
        { class: "customer-row", "data-customer": c.id },
        el("span", { class: "name" }, el("span", { class: `dot${c.isOnline ? " online" : ""}`, "aria-hidden": "true" }), " ", c.name,
          el("span", { class: "visually-hidden", text: c.isOnline ? ", online" : "" })),
        el("button", { type: "button", "aria-label": `${action} with ${c.name}`, onclick: () => startConversation(c) , text: action }),
        el("span", { class: "stats", text: `${c.email}${c.phone ? ` · ${c.phone}` : ""}` }),
        el("span", { class: "stats", text: stats }),
      );
    }),
  );
  $("customers-empty").hidden = state.customers.length > 0;
  $("customers-more").hidden = !state.customerCursor;
}

async function startConversation(c) {
  try {
    const r = await api("POST", "/api/messages/conversations", {
      customerId: c.id,
      customerName: c.name,
      customerEmail: c.email,
      customerPhone: c.phone || undefined,
    });
    const conv = r.conversation;
    if (!state.conversations.has(conv.id)) {
      state.conversations.set(conv.id, conv);
      state.convOrder.unshift(conv.id);
    }
    await openConversation(conv.id);
    $("compose").focus();
  } catch (e) {
    showError($("list-error"), `Could not start the conversation: ${e.message}`);
  }
}

async function saveMeta() {
  const o = state.open;
  if (!o?.id || !state.owner) return;
  const tags = $("conv-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    const r = await api("PATCH", `/api/messages/conversations/${o.id}`, {
      status: $("conv-status").value,
      priority: $("conv-priority").value,
      tags,
    });
    onConversationUpdated(r.conversation);
    showError($("chat-error"), "");
  } catch (e) {
    showError($("chat-error"), `Could not save: ${e.message}`);
  }
}

function onConversationUpdated(c) {
  if (!c?.id) return;
  const known = state.conversations.get(c.id);
  if (known) {
    Object.assign(known, { status: c.status, priority: c.priority, tags: c.tags });
    renderConversations();
  }
  if (state.open?.id === c.id && state.owner) fillMeta(c);
}

function fillMeta(c) {
  // A field being edited keeps what the user is typing.
  const set = (id, v) => {
    if (document.activeElement !== $(id)) $(id).value = v;
  };
  set("conv-status", c.status);
  set("conv-priority", c.priority);
  set("conv-tags", (c.tags || []).join(", "));
}

// ---------- the open conversation ----------

function openState(conv) {
  return {
    id: conv?.id || null,
    conv,
    bySeq: new Map(), // seq -> <li>
    pending: new Map(), // clientMessageId -> <li>
    highest: 0, // highest seq shown: the lastSeq for a rejoin
    lowest: Infinity,
    hasOlder: false,
    readSent: 0,
  };
}

async function openConversation(id) {
  const prev = state.open;
  if (prev?.id && prev.id !== id && state.socket?.connected) state.socket.emit("leave_conversation", { conversationId: prev.id });
  const r = await api("GET", `/api/messages/conversations/${id}?limit=${PAGE}`).catch((e) => {
    showError($("chat-error"), `Could not open the conversation: ${e.message}`);
    return null;
  });
  if (!r) return;
  state.open = openState(r.conversation);
  state.open.hasOlder = r.hasMore;
  showChat(r.conversation);
  for (const m of r.messages) onMessage(m, { quiet: true });
  scrollToEnd();
  joinOpen();
  markRead();
  const c = state.conversations.get(id);
  if (c) c.unreadCount = 0;
  renderConversations();
  $("app").dataset.view = "chat";
}

function showChat(conv) {
  $("messages").replaceChildren();
  $("chat-empty").hidden = !!conv;
  $("composer").hidden = false;
  $("typing").textContent = "";
  showError($("chat-error"), "");
  $("older").hidden = !state.open.hasOlder;
  $("conv-meta").hidden = !(state.owner && conv);
  if (conv) {
    $("chat-title").textContent = conv.name;
    setPresence(conv.isOnline);
    if (state.owner) fillMeta(conv);
  }
}

function setPresence(online) {
  const o = state.open;
  if (!o?.conv) return;
  o.conv.isOnline = online;
  const contact = [o.conv.email, o.conv.phone].filter(Boolean).join(" · ");
  $("chat-sub").textContent = `${online ? "● online" : "○ offline"}${contact ? ` · ${contact}` : ""}`;
}

async function openCustomerChat() {
  const r = await api("GET", "/api/messages/conversations");
  const conv = r.conversations[0];
  if (!conv) {
    if (!state.open) {
      state.open = openState(null);
      showChat(null);
      $("chat-title").textContent = "Messages";
      $("chat-sub").textContent = "Send your first message: it starts the conversation with the business.";
      $("chat-empty").hidden = true;
    }
    return;
  }
  if (state.open?.id === conv.id) return;
  await openConversation(conv.id);
}

function scrollToEnd() {
  const log = $("messages");
  log.scrollTop = log.scrollHeight;
}

function isMine(m) {
  return m.senderId === state.me.id;
}

const STATUS_TEXT = { sending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not sent" };
const TICKS = { sending: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };

function messageNode(m, status) {
  const mine = isMine(m) || status === "sending";
  const li = el("li", { class: `msg${mine ? " mine" : ""}`, "data-status": status, "data-seq": m.seq ? String(m.seq) : null, "data-id": m.id || null });
  li.append(el("span", { class: "content", text: m.content }));
  li.append(el("div", { class: "files" }));
  const meta = el("span", { class: "meta-line" });
  meta.append(el("span", { class: "visually-hidden", text: mine ? "You, " : `${m.senderName}, ` }));
  meta.append(el("time", { datetime: m.timestamp || "", text: when(m.timestamp || new Date().toISOString()) }));
  meta.append(el("span", { class: "edited", text: "" }));
  if (mine) meta.append(el("span", { class: "tick", "aria-label": STATUS_TEXT[status], title: STATUS_TEXT[status], text: TICKS[status] }));
  if (mine && m.id && !m.isDeleted) {
    meta.append(
      el("button", { type: "button", class: "link-button edit", onclick: () => startEdit(li), text: "Edit" }),
      el("button", { type: "button", class: "link-button delete", onclick: () => deleteMessage(li), text: "Delete" }),
    );
  }
  li.append(meta);
  fillMessage(li, m);
  return li;
}

// Content, files, the edit mark and the deletion of a stored message.
function fillMessage(li, m) {
  if (m.isDeleted) {
    li.classList.add("deleted");
    li.querySelector(".content").textContent = "This message was deleted";
    li.querySelector(".files").replaceChildren();
    for (const b of li.querySelectorAll(".edit, .delete")) b.remove();
    return;
  }
  li.querySelector(".content").textContent = m.content;
  li.querySelector(".edited").textContent = m.editedAt ? " · edited" : "";
  const files = li.querySelector(".files");
  files.replaceChildren();
  for (const a of m.attachments || []) files.append(attachmentNode(a));
}

function sizeText(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
}

// An attachment: uploads get short-lived signed links (the page's token is
// never put in a URL); links to files elsewhere are shown as links.
function attachmentNode(a) {
  const label = `${a.name} (${sizeText(a.size || 0)})`;
  if (!a.id) return el("a", { class: "file", href: a.url, rel: "noopener noreferrer", target: "_blank", text: label });
  const link = el("a", { class: "file", rel: "noopener noreferrer", target: "_blank", text: label });
  const box = el("span", { class: "attachment" });
  if (a.thumbnailUrl) box.append(el("img", { class: "thumb", alt: a.name, width: "160" }));
  box.append(link);
  api("GET", `/api/messages/attachments/${a.id}`)
    .then((r) => {
      link.href = r.url;
      const img = box.querySelector("img");
      if (img && r.thumbnailUrl) img.src = r.thumbnailUrl;
    })
    .catch((e) => link.append(` — unavailable: ${e.message}`));
  return box;
}

function startEdit(li) {
  if (li.querySelector("form.edit-form")) return;
  const content = li.querySelector(".content");
  const box = el("textarea", { rows: "2", maxlength: "5000", "aria-label": "Edit message" });
  box.value = content.textContent;
  const form = el(
    "form",
    { class: "edit-form" },
    box,
    el("button", { type: "submit", text: "Save" }),
    el("button", { type: "button", onclick: () => form.remove(), text: "Cancel" }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("PATCH", `/api/messages/${li.dataset.id}`, { content: box.value });
      fillMessage(li, r.message);
      form.remove();
    } catch (err) {
      showError($("chat-error"), `Could not edit: ${err.message}`);
    }
  });
  content.after(form);
  box.focus();
}

async function deleteMessage(li) {
  try {
    const r = await api("DELETE", `/api/messages/${li.dataset.id}`);
    fillMessage(li, r.message);
  } catch (e) {
    showError($("chat-error"), `Could not delete: ${e.message}`);
  }
}

function onMessageChanged(m) {
  const o = state.open;
  if (!o || o.id !== m.conversationId) return;
  const li = o.bySeq.get(m.seq);
  if (li) fillMessage(li, m);
}

function onMessageDeleted(p) {
  onMessageChanged({ conversationId: p.conversationId, seq: p.seq, isDeleted: true });
}

function setStatus(li, status) {
  const rank = { sending: 0, failed: 0, sent: 1, delivered: 2, read: 3 };
  if ((rank[li.dataset.status] ?? 0) > rank[status]) return; // statuses only move forward
  li.dataset.status = status;
  const t = li.querySelector(".tick");
  if (t) {
    t.textContent = TICKS[status];
    t.setAttribute("aria-label", STATUS_TEXT[status]);
    t.title = STATUS_TEXT[status];
  }
}

// A stored message from the socket, a replay, REST, or our own ack.
function onMessage(m, { quiet = false } = {}) {
  if (!m?.conversationId) return;
  if (state.owner) bumpConversation(m);
  const o = state.open;
  if (!o || o.id !== m.conversationId) return;
  if (o.bySeq.has(m.seq)) {
    const known = o.bySeq.get(m.seq);
    if (isMine(m)) setStatus(known, m.status);
    if (m.editedAt || m.isDeleted) fillMessage(known, m); // a change seen while polling
    return;
  }
  let li = m.clientMessageId && o.pending.get(m.clientMessageId);
  if (li) {
    o.pending.delete(m.clientMessageId);
    li.remove();
  }
  li = messageNode(m, m.status);
  // Insert in seq order (almost always at the end).
  const log = $("messages");
  let after = null;
  for (const [seq, node] of o.bySeq) if (seq < m.seq && (!after || seq > Number(after.dataset.seq))) after = node;
  const firstPending = o.pending.size ? o.pending.values().next().value : null;
  if (m.seq > o.highest) log.insertBefore(li, firstPending);
  else if (after) after.after(li);
  else log.prepend(li);
  o.bySeq.set(m.seq, li);
  o.highest = Math.max(o.highest, m.seq);
  o.lowest = Math.min(o.lowest, m.seq);
  if (!isMine(m)) {
    $("typing").textContent = "";
    if (!quiet && state.socket?.connected && m.status === "sent") {
      state.socket.emit("message_delivered", { conversationId: m.conversationId, messageId: m.id });
    }
    markRead();
  }
  if (!quiet) scrollToEnd();
}

function bumpConversation(m) {
  const c = state.conversations.get(m.conversationId);
  if (!c) return;
  if (!c.lastMessageTime || m.timestamp >= c.lastMessageTime) {
    c.lastMessage = m.content;
    c.lastMessageTime = m.timestamp;
    state.convOrder = [m.conversationId, ...state.convOrder.filter((x) => x !== m.conversationId)];
    renderConversations();
  }
}

const markRead = debounce(async () => {
  const o = state.open;
  if (!o?.id || document.visibilityState !== "visible" || o.highest <= o.readSent) return;
  const seq = o.highest;
  o.readSent = seq;
  if (state.socket?.connected) {
    state.socket.emit("mark_read", { conversationId: o.id, seq }, () => {});
  } else {
    await api("POST", `/api/messages/conversations/${o.id}/read`).catch(() => {
      o.readSent = 0;
    });
  }
}, 250);
document.addEventListener("visibilitychange", () => markRead());

function onStatus(p) {
  const o = state.open;
  if (!o || o.id !== p.conversationId) return;
  for (const li of o.bySeq.values()) if (li.dataset.id === p.messageId) setStatus(li, p.status);
}

function onRead(p) {
  const o = state.open;
  if (p.readerId === state.me.id) {
    const c = state.conversations.get(p.conversationId);
    if (c && c.unreadCount) {
      c.unreadCount = 0;
      renderConversations();
    }
    return;
  }
  if (!o || o.id !== p.conversationId) return;
  for (const [seq, li] of o.bySeq) if (seq <= p.upToSeq && li.classList.contains("mine")) setStatus(li, "read");
}

function onNotification(n) {
  if (state.open?.id === n.conversationId && document.visibilityState === "visible") return;
  if (state.owner) {
    const c = state.conversations.get(n.conversationId);
    if (c) {
      c.unreadCount = (c.unreadCount || 0) + 1;
      c.lastMessage = n.preview;
      c.lastMessageTime = new Date().toISOString();
      state.convOrder = [n.conversationId, ...state.convOrder.filter((x) => x !== n.conversationId)];
      renderConversations();
    } else {
      loadConversations().catch(() => {}); // a conversation the customer just started
    }
  } else if (!state.open?.id) {
    openCustomerChat().catch(() => {}); // the business started the conversation
  }
  toast(`New message from ${n.from}: ${n.preview}`);
}

function onTyping(p, on) {
  const o = state.open;
  if (!o || o.id !== p.conversationId || p.userId === state.me.id) return;
  clearTimeout(state.theirTypingTimer);
  $("typing").textContent = on ? `${p.userName || o.conv?.name || "They"} is typing…` : "";
  // A start whose stop got lost clears itself, as the server's does.
  if (on) state.theirTypingTimer = setTimeout(() => ($("typing").textContent = ""), TYPING_IDLE_MS + 1000);
}

// `presence` says the other side joined or left this conversation; leaving
// it is not going offline, so that case asks the server.
function onPresence(p) {
  const o = state.open;
  if (o?.conv && p.userId !== state.me.id && o.id === p.conversationId) {
    if (p.online) setPresence(true);
    else refreshOpen().catch(() => {});
  }
  const c = state.conversations.get(p.conversationId);
  if (c && p.userId === c.customerId) {
    c.isOnline = !!p.online;
    renderConversations();
  }
}

// ---------- composing and sending ----------

function wireChat() {
  const box = $("compose");
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    let text = box.value.trim();
    if (!text) return;
    const reply = /^\/([a-z0-9_-]{1,32})$/i.exec(text);
    if (reply && state.quickReplies?.has(reply[1].toLowerCase())) text = state.quickReplies.get(reply[1].toLowerCase());
    box.value = "";
    stopTyping();
    send(text);
  });
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  box.addEventListener("input", onComposeInput);
  $("older").addEventListener("click", loadOlder);
  $("attach-file").addEventListener("change", async (e) => {
    const file = e.target.files?.[0];
    e.target.value = "";
    if (file) await sendFile(file);
  });
}

// Upload first, then send the upload's id with the message.
async function sendFile(file) {
  showError($("chat-error"), "");
  let o = state.open;
  try {
    if (!o?.id) {
      const r = await api("POST", "/api/messages/conversations", {});
      await openConversation(r.conversation.id);
      o = state.open;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const res = await fetch(`/api/messages/conversations/${o.id}/attachments`, {
      method: "POST",
      headers: { Authorization: `Bearer ${state.token}` },
      body: form,
    });
    const data = await res.json().catch(() => null);
    if (!res.ok || !data?.success) throw new ApiError(data?.message || `${res.status}`, res.status, data?.code);
    const text = $("compose").value.trim();
    $("compose").value = "";
    await send(text || file.name, randomId(), null, [{ id: data.attachment.id }]);
  } catch (err) {
    showError($("chat-error"), `Could not attach ${file.name}: ${err.message}`);
  }
}

function onComposeInput() {
  const o = state.open;
  if (!o?.id || !state.socket?.connected) return;
  const now = Date.now();
  if (now - state.typingSent > 2000) {
    state.typingSent = now;
    state.socket.emit("typing_start", { conversationId: o.id });
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typingSent && state.open?.id && state.socket?.connected) {
    state.socket.emit("typing_stop", { conversationId: state.open.id });
  }
  state.typingSent = 0;
}

async function send(content, clientMessageId = randomId(), pendingNode = null, attachments = []) {
  let o = state.open;
  showError($("chat-error"), "");
  if (!o?.id) {
    // The customer's first message creates the conversation (the seed's flow).
    try {
      const r = await api("POST", "/api/messages/conversations", {});
      await openConversation(r.conversation.id);
      o = state.open;
    } catch (e) {
      $("compose").value = content;
      return showError($("chat-error"), `Could not start the conversation: ${e.message}`);
    }
  }
  const li = pendingNode || messageNode({ content, senderId: state.me.id }, "sending");
  if (pendingNode) setStatus(li, "sending");
  li.querySelector(".retry")?.remove();
  o.pending.set(clientMessageId, li);
  $("messages").append(li);
  scrollToEnd();
  const body = { conversationId: o.id, content, clientMessageId, attachments };
  if (state.socket?.connected) {
    try {
      const ack = await state.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("send_message", body);
      if (ack?.ok) return onMessage(ack.message);
      return failed(o, clientMessageId, content, ack?.error || "refused", attachments);
    } catch {
      // No ack in time: the same clientMessageId over REST is stored at most once.
    }
  }
  try {
    const r = await api("POST", "/api/messages/send", body);
    onMessage(r.message);
  } catch (e) {
    failed(o, clientMessageId, content, e.message, attachments);
  }
}

function failed(o, clientMessageId, content, reason, attachments = []) {
  const li = o.pending.get(clientMessageId);
  if (!li) return;
  li.dataset.status = "failed";
  const tick = li.querySelector(".tick");
  if (tick) {
    tick.textContent = TICKS.failed;
    tick.setAttribute("aria-label", `Not sent: ${reason}`);
  }
  li.querySelector(".meta-line").append(
    el("button", { type: "button", class: "retry", onclick: () => send(content, clientMessageId, li, attachments), text: "Retry" }),
  );
  showError($("chat-error"), `Message not sent: ${reason}`);
}

async function loadOlder() {
  const o = state.open;
  if (!o?.id || !Number.isFinite(o.lowest)) return;
  try {
    const r = await api("GET", `/api/messages/conversations/${o.id}?before=${o.lowest}&limit=${PAGE}`);
    const log = $("messages");
    const keep = log.scrollHeight - log.scrollTop;
    for (const m of r.messages) onMessage(m, { quiet: true });
    o.hasOlder = r.hasMore;
    $("older").hidden = !o.hasOlder;
    log.scrollTop = log.scrollHeight - keep;
  } catch (e) {
    showError($("chat-error"), `Could not load earlier messages: ${e.message}`);
  }
}

boot();
