// Signing in (a pasted token or a `seed` link's `#token=`), and out.

import { openCustomerChat } from "./chat.js";
import { composerHint, wireChat } from "./composer.js";
import { connectSocket } from "./connection.js";
import { showError } from "./dom.js";
import { loadConversations, wireInbox } from "./inbox.js";
import { initNotifications } from "./notify.js";
import { api } from "./rest.js";
import { $, TOKEN_KEY, state } from "./state.js";

export function boot() {
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

export function showSignIn(error) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("conn").hidden = true;
  $("who").textContent = "";
  showError($("signin-error"), error || "");
  $("token").focus();
}

export async function signIn(token) {
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
  const part = me.team && me.team.role !== "owner" ? `team ${me.team.role}` : "business owner";
  $("who").textContent = `${me.name} · ${state.owner ? part : "customer"}`;
  wireChat();
  if (state.owner) {
    wireInbox();
    await loadTeam();
    await loadConversations();
    loadQuickReplies();
  } else {
    await openCustomerChat();
  }
  connectSocket();
  initNotifications();
}

// The business's team (owner, admins, agents): who conversations can be
// assigned to, and the names on the list. Shown once there is a team.
export async function loadTeam() {
  try {
    const r = await api("GET", "/api/team");
    state.team = { role: state.me.team?.role || "owner", members: new Map(r.team.members.map((m) => [m.userId, m])) };
  } catch {
    state.team = null; // the console works without it
  }
  const teamed = (state.team?.members.size || 0) > 1;
  $("assigned-filter-row").hidden = !teamed;
  $("conv-assignee-row").hidden = !teamed;
  $("note-toggle-row").hidden = !teamed;
}

// An owner's quick replies: typing `/shortcut` and sending sends the reply.
export async function loadQuickReplies() {
  try {
    const r = await api("GET", "/api/quick-replies");
    state.quickReplies = new Map(r.quickReplies.map((q) => [q.shortcut, q.content]));
    composerHint();
  } catch {
    state.quickReplies = new Map(); // the console works without them
  }
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}
