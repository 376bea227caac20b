/* The "buy one" slide, live: the stock left, the orders confirmed and the first buyers, as the room buys.
 *
 * Figures come from the gateway the deck was built for (`flashsale slides --url`, kept in data-gateway):
 * its WebSocket /ws (no userId: every order update, and the stock) and, for the starting figures, GET
 * /api/products/{id}, which the gateway lets any page read (the deck is a file:// page, Origin: null).
 * With no gateway in reach the slide keeps its QR code and says "not connected", quietly: nothing here
 * may throw into reveal.js, and no HTTP request is made until the WebSocket has opened.
 *
 * "Confirmed" counts the CONFIRMED updates this screen has seen since it connected (or since the sale it
 * watches was reset): open the deck before the sale starts.
 */
(function () {
  "use strict";
  const root = document.getElementById("flashsale-demo");
  if (!root || !root.dataset.gateway) return;
  const OPEN_TIMEOUT_MS = 4000, FIRST_BUYERS = 5;
  const field = (name) => root.querySelector(`[data-live="${name}"]`);
  const state = { ws: null, timer: null, retries: 0, sale: null, initial: null, available: null, figures: 0,
                  confirmed: new Set(), buyers: [] };
  let gateway, socketUrl;
  try {
    gateway = new URL(root.dataset.gateway);
    socketUrl = new URL("ws", gateway).href.replace(/^http/, "ws");
  } catch (_) {
    return say("not connected: no gateway address", false);
  }

  function say(text, live) {
    const status = field("status");
    if (status) { status.textContent = text; status.dataset.state = live ? "live" : "off"; }
  }

  // A name the buyer page made up (buyer-3f9a1c) is shown; a name somebody typed is not put on a projector.
  function masked(userId) {
    const id = String(userId || "?");
    return /^buyer-[0-9a-f]{6}$/.test(id) ? id : id.slice(0, 2) + "\u2026";
  }

  function render() {
    if (state.available === null) return;
    field("panel").hidden = false;
    field("stock").textContent = state.available.toLocaleString("en");
    field("initial").textContent = state.initial === null ? "" : ` of ${state.initial.toLocaleString("en")}`;
    const share = state.initial ? Math.min(1, state.available / state.initial) : 1;
    field("bar").style.width = `${(share * 100).toFixed(1)}%`;
    field("confirmed").textContent = state.confirmed.size.toLocaleString("en");
    field("buyers").textContent = state.buyers.length ? state.buyers.map(masked).join(", ") : "none yet";
  }

  function newSale() {
    state.confirmed.clear();
    state.buyers = [];
    state.initial = null;
    loadProduct();
  }

  // The starting figures: a new sale sends no stock_update until somebody orders.
  function loadProduct() {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    const asked = state.figures, abort = new AbortController();
    setTimeout(() => abort.abort(), OPEN_TIMEOUT_MS);
    fetch(new URL(`api/products/${encodeURIComponent(root.dataset.product)}`, gateway),
          { cache: "no-store", signal: abort.signal })
      .then((r) => (r.ok ? r.json() : null))
      .then((product) => {
        if (!product) return;
        state.initial = Number(product.initialStock);
        if (state.figures === asked) state.available = Number(product.availableStock);  // else the socket's is newer
        render();
      })
      .catch(() => {});  // the socket still tells the stock; the bar waits for the next try
  }

  function onMessage(message) {
    const data = message.data || {};
    if (message.type === "stock_update" && data.productId === root.dataset.product) {
      if (state.sale !== null && data.saleId !== state.sale) newSale();
      if (state.initial === null) loadProduct();
      state.sale = data.saleId;
      state.available = Math.max(0, Number(data.availableStock) || 0);
      state.figures += 1;
    } else if (message.type === "order_update" && data.status === "CONFIRMED" && !state.confirmed.has(data.orderId)) {
      state.confirmed.add(data.orderId);  // delivery is at least once: an update may come twice
      if (state.buyers.length < FIRST_BUYERS) state.buyers.push(data.userId);
    } else {
      return;
    }
    render();
  }

  function connect() {
    clearTimeout(state.timer);
    root.dataset.attempts = Number(root.dataset.attempts || 0) + 1;  // for the tests, and a curious speaker
    let ws;
    try {
      ws = new WebSocket(socketUrl);
    } catch (_) {  // an https page may not open ws:, for one
      return say("not connected", false);
    }
    state.ws = ws;
    const giveUp = setTimeout(() => ws.close(), OPEN_TIMEOUT_MS);  // an address that never answers
    ws.onopen = () => {
      clearTimeout(giveUp);
      state.retries = 0;
      say(`live from ${gateway.host}`, true);
      loadProduct();
    };
    ws.onmessage = (event) => {
      try { onMessage(JSON.parse(event.data)); } catch (_) { /* not for us */ }
    };
    ws.onerror = () => {};  // onclose follows
    ws.onclose = () => {
      clearTimeout(giveUp);
      if (state.ws !== ws) return;
      state.ws = null;
      say("not connected", false);
      state.timer = setTimeout(connect, Math.min(15000, 1000 * 2 ** state.retries++));
    };
  }

  say("not connected", false);
  connect();
  try {
    // On the slide: fresh figures now, and a new try at once if the gateway came up after the deck opened.
    Reveal.on("slidechanged", (event) => {
      if (!event.currentSlide || !event.currentSlide.contains(root)) return;
      if (state.ws) loadProduct();
      else { state.retries = 0; connect(); }
    });
  } catch (_) { /* no reveal.js: the figures still update */ }
})();
