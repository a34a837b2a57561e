// The Bastion storefront: plain DOM, no build step, no framework.
//
// Security notes, since this page is part of the proof:
// - The access token lives only in the `session` object of this module: never in
//   localStorage, sessionStorage, a cookie or the DOM (localStorage keeps one flag,
//   HINT below, saying a session may exist and is worth a refresh). On load, and a
//   minute before it expires, it is renewed through POST /api/auth/refresh, which the
//   browser authenticates with the HttpOnly refresh cookie that no script can read.
// - Refreshes are single-flight (and serialised across tabs with the Web Locks API):
//   presenting one refresh token twice is reuse, and reuse ends every session.
// - Everything the API returns reaches the DOM through textContent, never as HTML.
// - No inline scripts, styles or event-handler attributes: the CSP forbids them.

const REFRESH_LEAD_SECONDS = 60;
// A hint, not a credential: "this browser may hold a refresh cookie". It spares
// anonymous visitors a refresh request that could only fail (and be logged as one).
const HINT = "bastion.session-hint";
const COUNTRIES = { AU: "Australia", IN: "India", GB: "United Kingdom", US: "United States" };

const $ = (id) => document.getElementById(id);

const session = { token: null, expiresAt: 0, timer: 0, refreshing: null, user: null };
const state = { products: new Map(), productCursor: null, orderCursor: null, cart: new Map() };
const channel = "BroadcastChannel" in window ? new BroadcastChannel("bastion-auth") : null;

// ------------------------------------------------------------------- DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) throw new Error("use addEventListener, not " + key);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function money(cents, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

let noticeTimer = 0;

function notify(message, kind = "info") {
  const box = $("notice");
  $("notice-text").textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === "success") noticeTimer = setTimeout(() => (box.hidden = true), 6000);
}

$("notice-close").addEventListener("click", () => {
  $("notice").hidden = true;
});

// ------------------------------------------------------------------- the API

class ApiProblem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

async function readProblem(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = {};
  }
  if (typeof problem !== "object" || problem === null) problem = {};
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiProblem(response.status, problem, Number.isFinite(retry) ? retry : null);
}

async function request(path, { method = "GET", body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
}

// Calls the API; on a 401 with a token, renews it once and retries.
async function api(path, options = {}) {
  let response = await request(path, options);
  if (response.status === 401 && options.auth !== false && session.token) {
    if (await refreshSession()) response = await request(path, options);
  }
  if (response.status === 401 && options.auth !== false) signedOut();
  if (!response.ok) throw await readProblem(response);
  if (response.status === 204) return null;
  return response.json();
}

// ------------------------------------------------------------------- the session

function hint(on) {
  try {
    if (on) localStorage.setItem(HINT, "1");
    else localStorage.removeItem(HINT);
  } catch {
    // Storage may be disabled; the hint is only an optimisation.
  }
}

function hinted() {
  try {
    return localStorage.getItem(HINT) === "1";
  } catch {
    return true;
  }
}

function setToken(token, expiresIn) {
  clearTimeout(session.timer);
  session.token = token;
  hint(Boolean(token));
  if (!token) {
    session.expiresAt = 0;
    return;
  }
  session.expiresAt = Date.now() + expiresIn * 1000;
  const wait = Math.max(5, expiresIn - REFRESH_LEAD_SECONDS) * 1000;
  session.timer = setTimeout(() => {
    refreshSession().then((ok) => {
      if (!ok) signedOut("Your session has ended. Please sign in again.");
    });
  }, wait);
}

function withRefreshLock(task) {
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request("bastion-refresh", task);
  }
  return task();
}

async function doRefresh() {
  let response;
  try {
    response = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    return false;
  }
  if (!response.ok) {
    setToken(null);
    return false;
  }
  const body = await response.json();
  setToken(body.accessToken, body.expiresIn);
  return true;
}

// Renews the access token through the HttpOnly cookie. Single-flight in this tab, and
// serialised across tabs, so one refresh token is never presented twice.
function refreshSession() {
  if (!session.refreshing) {
    session.refreshing = withRefreshLock(doRefresh).finally(() => {
      session.refreshing = null;
    });
  }
  return session.refreshing;
}

async function signedIn() {
  let user;
  try {
    user = await api("/api/users/me");
  } catch (problem) {
    if (problem instanceof ApiProblem && problem.status === 401) return;
    throw problem;
  }
  session.user = user;
  $("who-name").textContent = user.name;
  $("account").hidden = false;
  $("auth").hidden = true;
  $("cart").hidden = false;
  $("orders").hidden = false;
  document.body.dataset.session = "in";
  renderCart();
  await loadOrders(true);
}

function signedOut(message) {
  setToken(null);
  session.user = null;
  state.cart.clear();
  state.orderCursor = null;
  $("who-name").textContent = "";
  $("account").hidden = true;
  $("cart").hidden = true;
  $("orders").hidden = true;
  $("order-list").replaceChildren();
  $("auth").hidden = false;
  document.body.dataset.session = "out";
  renderCart();
  if (message) notify(message);
}

// ------------------------------------------------------------------- forms and problems

function inputsFor(scopes, pointer) {
  return scopes.flatMap((scope) =>
    [...scope.querySelectorAll("[data-pointer]")].filter((node) => node.dataset.pointer === pointer),
  );
}

function phrase(scopes, pointer, detail) {
  // The API's details are fragments such as "is required"; lead with the field's name.
  const [input] = inputsFor(scopes, pointer);
  const label = input && input.labels && input.labels[0];
  const name = label ? label.firstChild.textContent.trim() : "";
  if (!/^(is|must|names|mixes) /.test(detail)) return detail;
  return name ? `${name} ${detail}.` : `This ${detail}.`;
}

function clearProblems(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function errorSlot(scopes, pointer) {
  // The slot for this pointer, or for its nearest parent: #/items/0/quantity falls back
  // to #/items/0, then #/items.
  let current = pointer;
  while (current && current.length > 2) {
    for (const scope of scopes) {
      const slot = [...scope.querySelectorAll("[data-error-for]")].find(
        (node) => node.dataset.errorFor === current,
      );
      if (slot) return { slot, pointer: current };
    }
    current = current.slice(0, current.lastIndexOf("/"));
  }
  return null;
}

function showProblem(form, error, scopes = [form]) {
  clearProblems(form);
  for (const scope of scopes) if (scope !== form) clearProblems(scope);
  const formError = form.querySelector(".form-error");
  if (!(error instanceof ApiProblem)) {
    formError.textContent = "The store cannot be reached. Check your connection and try again.";
    formError.hidden = false;
    return;
  }
  const problem = error.problem;
  const unplaced = [];
  let placed = 0;
  let first = null;
  for (const item of Array.isArray(problem.errors) ? problem.errors : []) {
    const pointer = String(item.pointer || "#/");
    const detail = String(item.detail || "is invalid");
    const found = errorSlot(scopes, pointer);
    if (!found) {
      unplaced.push(detail);
      continue;
    }
    const text = phrase(scopes, pointer, detail);
    found.slot.textContent = found.slot.hidden ? text : `${found.slot.textContent} ${text}`;
    found.slot.hidden = false;
    placed += 1;
    for (const input of [...inputsFor(scopes, pointer), ...inputsFor(scopes, found.pointer)]) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  }
  let summary = String(problem.detail || error.message);
  if (placed && error.status === 400) summary = "Please check the highlighted fields.";
  if (error.status === 429) {
    summary = error.retryAfter
      ? `Too many attempts. Try again in ${wait(error.retryAfter)}.`
      : "Too many attempts. Try again later.";
  }
  formError.textContent = unplaced.length ? `${summary} ${unplaced.join(" ")}` : summary;
  formError.hidden = false;
  if (first) first.focus();
}

function wait(seconds) {
  if (seconds < 90) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? "" : "s"}`;
}

async function submitting(form, task) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await task();
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

function selectTab(which) {
  const login = which === "login";
  $("tab-login").setAttribute("aria-selected", String(login));
  $("tab-register").setAttribute("aria-selected", String(!login));
  $("tab-login").tabIndex = login ? 0 : -1;
  $("tab-register").tabIndex = login ? -1 : 0;
  $("login-form").hidden = !login;
  $("register-form").hidden = login;
}

$("tab-login").addEventListener("click", () => selectTab("login"));
$("tab-register").addEventListener("click", () => selectTab("register"));
for (const tab of [$("tab-login"), $("tab-register")]) {
  tab.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const next = tab.id === "tab-login" ? "register" : "login";
    selectTab(next);
    $(`tab-${next}`).focus();
  });
}

async function logIn(email, password) {
  const body = await api("/api/auth/login", {
    method: "POST",
    body: { email, password },
    auth: false,
  });
  setToken(body.accessToken, body.expiresIn);
  channel?.postMessage("login");
  await signedIn();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, async () => {
    clearProblems(form);
    try {
      await logIn(form.elements.email.value, form.elements.password.value);
      form.reset();
      notify(`Welcome back, ${session.user ? session.user.name : "shopper"}.`, "success");
    } catch (error) {
      form.elements.password.value = "";
      showProblem(form, error);
    }
  });
});

$("register-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, async () => {
    clearProblems(form);
    const email = form.elements.email.value;
    const password = form.elements.password.value;
    try {
      await api("/api/auth/register", {
        method: "POST",
        body: { email, password, name: form.elements.name.value },
        auth: false,
      });
    } catch (error) {
      form.elements.password.value = "";
      showProblem(form, error);
      return;
    }
    form.reset();
    try {
      await logIn(email, password);
      notify(`Welcome, ${session.user ? session.user.name : "shopper"}: your account is ready.`, "success");
    } catch {
      selectTab("login");
      $("login-email").value = email;
      $("login-password").focus();
      notify("Your account is ready: sign in to continue.", "success");
    }
  });
});

$("logout").addEventListener("click", async () => {
  const button = $("logout");
  button.disabled = true;
  try {
    await withRefreshLock(() =>
      fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", cache: "no-store" }),
    );
  } catch {
    // Forget the token all the same; the server-side session then simply expires.
  } finally {
    button.disabled = false;
  }
  channel?.postMessage("logout");
  signedOut("You have logged out.");
  selectTab("login");
});

channel?.addEventListener("message", (event) => {
  if (event.data === "logout" && session.token) signedOut("You logged out in another tab.");
  if (event.data === "login" && !session.token) {
    refreshSession().then((ok) => ok && signedIn());
  }
});

document.addEventListener("visibilitychange", () => {
  // Timers sleep in background tabs: renew on return if the token is nearly spent.
  if (document.visibilityState !== "visible" || !session.token) return;
  if (session.expiresAt - Date.now() < REFRESH_LEAD_SECONDS * 1000) {
    refreshSession().then((ok) => {
      if (!ok) signedOut("Your session has ended. Please sign in again.");
    });
  }
});

// ------------------------------------------------------------------- the catalogue

function productCard(product) {
  const quantity = el("input", {
    type: "number",
    min: 1,
    max: 100,
    value: 1,
    inputmode: "numeric",
    id: `qty-${product.id}`,
    className: "qty",
  });
  const add = el("button", { type: "button", className: "btn btn-primary" }, "Add to basket");
  add.addEventListener("click", () => addToCart(product.id, Number(quantity.value)));
  return el(
    "li",
    { className: "product", dataset: { productId: product.id } },
    el("div", { className: "product-art", "aria-hidden": "true" }, product.name.slice(0, 1)),
    el("h3", { className: "product-name" }, product.name),
    el("p", { className: "price" }, money(product.priceCents, product.currency)),
    el(
      "div",
      { className: "buy" },
      el("label", { for: `qty-${product.id}`, className: "visually-hidden" }, `Quantity of ${product.name}`),
      quantity,
      add,
    ),
  );
}

async function loadProducts() {
  const status = $("products-status");
  const query = new URLSearchParams({ limit: "20" });
  if (state.productCursor) query.set("cursor", state.productCursor);
  try {
    const page = await api(`/api/products?${query}`, { auth: false });
    for (const product of page.items) {
      state.products.set(product.id, product);
      $("products").append(productCard(product));
    }
    state.productCursor = page.nextCursor;
    $("more-products").hidden = !page.nextCursor;
    status.hidden = state.products.size > 0;
    status.textContent = "The catalogue is empty.";
  } catch {
    status.hidden = false;
    status.textContent = "The catalogue could not be loaded. Reload the page to try again.";
  }
}

$("more-products").addEventListener("click", loadProducts);

// ------------------------------------------------------------------- the basket

function addToCart(productId, quantity) {
  if (!session.token) {
    notify("Sign in or create an account to order.");
    selectTab("login");
    $("login-email").focus();
    return;
  }
  const current = state.cart.get(productId) || 0;
  const wanted = Number.isInteger(quantity) && quantity > 0 ? quantity : 1;
  state.cart.set(productId, Math.min(100, current + wanted));
  renderCart();
  const product = state.products.get(productId);
  notify(`Added ${wanted} × ${product ? product.name : "item"} to your basket.`, "success");
}

function renderCart() {
  const list = $("cart-lines");
  list.replaceChildren();
  let subtotal = 0;
  let currency = "USD";
  let index = 0;
  for (const [productId, quantity] of state.cart) {
    const product = state.products.get(productId);
    const name = product ? product.name : "Product";
    if (product) {
      subtotal += product.priceCents * quantity;
      currency = product.currency;
    }
    const pointer = `#/items/${index}`;
    const input = el("input", {
      type: "number",
      min: 1,
      max: 100,
      value: quantity,
      inputmode: "numeric",
      id: `cart-qty-${index}`,
      className: "qty",
      dataset: { pointer: `${pointer}/quantity` },
    });
    input.addEventListener("change", () => {
      const value = Number(input.value);
      if (Number.isInteger(value) && value > 0) state.cart.set(productId, Math.min(100, value));
      renderCart();
    });
    const remove = el("button", { type: "button", className: "btn btn-link" }, "Remove");
    remove.addEventListener("click", () => {
      state.cart.delete(productId);
      renderCart();
    });
    list.append(
      el(
        "li",
        { className: "cart-line" },
        el("span", { className: "cart-name" }, name),
        el("label", { for: `cart-qty-${index}`, className: "visually-hidden" }, `Quantity of ${name}`),
        input,
        el("span", { className: "cart-price" }, product ? money(product.priceCents * quantity, currency) : ""),
        remove,
        el("p", { className: "field-error", dataset: { errorFor: pointer }, hidden: true }),
      ),
    );
    index += 1;
  }
  const empty = state.cart.size === 0;
  let count = 0;
  for (const quantity of state.cart.values()) count += quantity;
  $("basket-count").textContent = String(count);
  $("basket-link").setAttribute("aria-label", `Basket, ${count} item${count === 1 ? "" : "s"}`);
  $("order-form").hidden = empty;
  $("cart-empty").hidden = !empty;
  $("cart-subtotal").hidden = empty;
  $("cart-subtotal").textContent = empty ? "" : `Subtotal: ${money(subtotal, currency)}`;
}

$("order-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const cart = $("cart");
  submitting(form, async () => {
    clearProblems(cart);
    const fields = form.elements;
    const items = [...state.cart].map(([productId, quantity]) => ({ productId, quantity }));
    const order = {
      items,
      shippingAddress: {
        line1: fields.line1.value,
        city: fields.city.value,
        postcode: fields.postcode.value,
        country: fields.country.value,
      },
    };
    const promo = fields.promoCode.value.trim();
    if (promo) order.promoCode = promo;
    let placed;
    try {
      placed = await api("/api/orders", { method: "POST", body: order });
    } catch (error) {
      showProblem(form, error, [form, cart]);
      return;
    }
    state.cart.clear();
    renderCart();
    fields.promoCode.value = "";
    const saved = placed.discountCents
      ? ` (${placed.promoCode} saved you ${money(placed.discountCents, placed.currency)})`
      : "";
    notify(`Order placed: ${money(placed.totalCents, placed.currency)}${saved}.`, "success");
    await loadOrders(true);
  });
});

// ------------------------------------------------------------------- orders

function orderCard(order) {
  const lines = order.items.map((item) => {
    const product = state.products.get(item.productId);
    return el(
      "li",
      {},
      el("span", {}, `${item.quantity} × ${product ? product.name : "Product"}`),
      el("span", {}, money(item.unitPriceCents * item.quantity, order.currency)),
    );
  });
  const address = order.shippingAddress;
  const totals = el(
    "dl",
    { className: "totals" },
    el("dt", {}, "Subtotal"),
    el("dd", {}, money(order.subtotalCents, order.currency)),
    order.discountCents
      ? [el("dt", {}, `Promo ${order.promoCode}`), el("dd", {}, `−${money(order.discountCents, order.currency)}`)]
      : null,
    el("dt", { className: "total" }, "Total"),
    el("dd", { className: "total" }, money(order.totalCents, order.currency)),
  );
  const card = el(
    "li",
    { className: "order", dataset: { orderId: order.id, status: order.status } },
    el(
      "div",
      { className: "order-head" },
      el("span", { className: "order-date" }, when(order.createdAt)),
      el("span", { className: `badge badge-${order.status}` }, order.status),
    ),
    el("ul", { className: "order-lines" }, lines),
    totals,
    el(
      "p",
      { className: "muted ship-to" },
      `Ships to ${address.line1}, ${address.city} ${address.postcode}, ${COUNTRIES[address.country] || address.country}`,
    ),
  );
  if (order.status === "pending") {
    const cancel = el("button", { type: "button", className: "btn btn-link" }, "Cancel order");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const updated = await api(`/api/orders/${encodeURIComponent(order.id)}/cancel`, { method: "POST" });
        card.replaceWith(orderCard(updated));
        notify("The order is cancelled.", "success");
      } catch (error) {
        cancel.disabled = false;
        notify(error instanceof ApiProblem ? error.message : "The order could not be cancelled.", "error");
      }
    });
    card.append(cancel);
  }
  return card;
}

async function loadOrders(fresh) {
  if (fresh) {
    state.orderCursor = null;
    $("order-list").replaceChildren();
  }
  const query = new URLSearchParams({ limit: "10" });
  if (state.orderCursor) query.set("cursor", state.orderCursor);
  try {
    const page = await api(`/api/orders?${query}`);
    for (const order of page.items) $("order-list").append(orderCard(order));
    state.orderCursor = page.nextCursor;
    $("more-orders").hidden = !page.nextCursor;
    $("orders-empty").hidden = $("order-list").children.length > 0;
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 401) return;
    notify("Your orders could not be loaded.", "error");
  }
}

$("more-orders").addEventListener("click", () => loadOrders(false));

// ------------------------------------------------------------------- start

async function start() {
  const products = loadProducts();
  if (hinted() && (await refreshSession())) await signedIn();
  else signedOut();
  await products;
  $("app").setAttribute("aria-busy", "false");
  document.body.dataset.ready = "true";
}

start();
