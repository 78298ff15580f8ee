// The console's service worker: shows the Web Push notifications the server
// sends (omnibiz_service::notify — the payload is {title, body, conversationId,
// unread, url}) and opens the conversation when one is clicked. It caches
// nothing: the console is always loaded fresh from the server.

self.addEventListener("push", (event) => {
  let n = {};
  try {
    n = event.data ? event.data.json() : {};
  } catch {
    n = { body: event.data ? event.data.text() : "" };
  }
  const title = n.title || "New message";
  const body = n.unread > 1 ? `${n.body || ""} (${n.unread} unread)` : n.body || "";
  event.waitUntil(
    self.registration.showNotification(title, {
      body,
      // One notification per conversation: a newer one replaces it (and still alerts).
      tag: n.conversationId ? `conversation-${n.conversationId}` : undefined,
      renotify: Boolean(n.conversationId),
      data: { url: n.url || "/" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin).href;
  event.waitUntil(
    (async () => {
      const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const page of pages) {
        if (new URL(page.url).origin === self.location.origin) {
          await page.focus();
          return page.navigate ? page.navigate(url).catch(() => {}) : undefined;
        }
      }
      return self.clients.openWindow(url);
    })(),
  );
});
