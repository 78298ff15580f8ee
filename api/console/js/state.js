// The page's state, its element lookup and its constants.


export const $ = (id) => document.getElementById(id);
export const TOKEN_KEY = "omnibiz.console.token";
export const PAGE = 50; // messages per page
export const POLL_MS = 3000; // REST polling while the socket is down
export const SEARCH_DEBOUNCE_MS = 300;
export const TYPING_IDLE_MS = 3000; // the seed's typing timeout
export const ACK_TIMEOUT_MS = 5000;

export const state = {
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
  replyTo: null, // {id, who, excerpt} while composing a reply
  team: null, // {role, members: Map(userId -> member)} on the business side
};
