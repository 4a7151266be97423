// bookrec demo SPA, and the reference client of the API: every operation is an automatic
// persisted query (Apollo's protocol), queries go by GET so that a CDN can cache the public ones.
// No framework and no build step: the DOM is built with textContent only, so no data is ever parsed as HTML.

const ENDPOINT = "/graphql";
const LIMIT = 12;
const RATINGS_SHOWN = 10;
const RECENT_USERS_KEY = "bookrec.recentUsers";
const TOKEN_KEY = "bookrec.token";
const LEAVE_MS = 160;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- API client

class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The same manifest the server uses as its allow-list (PERSISTED_QUERIES_ONLY), so the two cannot drift.
const operations = fetch("persisted-queries.json")
  .then((response) => {
    if (!response.ok) throw new ApiError("HTTP", `persisted-queries.json: HTTP ${response.status}`);
    return response.json();
  })
  .then((manifest) => Object.fromEntries(manifest.operations.map((operation) => [operation.name, operation])));

async function send(body, { viaGet, token }) {
  let response;
  try {
    if (viaGet) {
      const params = new URLSearchParams({
        operationName: body.operationName,
        variables: JSON.stringify(body.variables),
        extensions: JSON.stringify(body.extensions),
      });
      response = await fetch(`${ENDPOINT}?${params}`, { headers: { accept: "application/json" } });
    } else {
      const headers = { accept: "application/json", "content-type": "application/json" };
      if (token) headers.authorization = `Bearer ${token}`;
      response = await fetch(ENDPOINT, { method: "POST", headers, body: JSON.stringify(body) });
    }
  } catch {
    throw new ApiError("NETWORK", "fetch failed");
  }
  try {
    return await response.json();
  } catch {
    throw new ApiError("HTTP", `HTTP ${response.status} without a JSON body`);
  }
}

const firstError = (payload) => (payload.errors && payload.errors[0]) || null;

/** Run a manifest operation: the hash alone first, the full text only if the server does not know it yet. */
async function graphql(name, variables, token = null) {
  const operation = (await operations)[name];
  const request = {
    operationName: name,
    variables,
    extensions: { persistedQuery: { version: 1, sha256Hash: operation.id } },
  };
  // Queries are anonymous (a token would only make the response uncacheable); mutations carry the token.
  const viaGet = operation.type === "query";
  let payload = await send(request, { viaGet, token: viaGet ? null : token });
  if (firstError(payload)?.extensions?.code === "PERSISTED_QUERY_NOT_FOUND") {
    payload = await send({ ...request, query: operation.body }, { viaGet: false, token: viaGet ? null : token });
  }
  const error = firstError(payload);
  if (error) throw new ApiError(error.extensions?.code ?? "UNKNOWN", error.message);
  return payload.data;
}

const SENTENCES = {
  NETWORK: "The server cannot be reached. Check that it is running, then try again.",
  HTTP: "The server answered with an error page instead of data. Please try again.",
  UNAUTHENTICATED: "Your sign-in token was not accepted: it is missing, expired or not from this server. Paste a fresh token from make serve.",
  FORBIDDEN: "Your token is not allowed to do this.",
  BAD_USER_INPUT: "The server did not accept that input.",
  NOT_FOUND: "That book is not in the catalogue.",
  SERVICE_UNAVAILABLE: "The service cannot reach its data store right now. Please try again in a moment.",
  INTERNAL_SERVER_ERROR: "Something went wrong on the server. Please try again.",
  PERSISTED_QUERY_NOT_FOUND: "The server could not keep this page's query. Please try again.",
  GRAPHQL_PARSE_FAILED: "This page does not match the server's API. Reload the page.",
  GRAPHQL_VALIDATION_FAILED: "This page does not match the server's API. Reload the page.",
  BAD_REQUEST: "The server could not read the request. Reload the page.",
};

/** A sentence a person can act on; the server's own words are added where they name what to fix. */
function explain(error) {
  const sentence = SENTENCES[error.code] ?? "Something unexpected happened. Please try again.";
  const specific = ["FORBIDDEN", "BAD_USER_INPUT"].includes(error.code) && error.message;
  return specific ? `${sentence} The server said: ${error.message}.` : sentence;
}

// ---------------------------------------------------------------- state

const state = {
  userId: null, // the reader shown; null shows popular books
  token: null,
  claims: null,
  shownUser: null, // the last user payload rendered, to restore a card when a rating fails
  view: 0, // bumped on every new load, so that a slow answer never overwrites a newer one
  ratingsExpanded: false,
};

// ---------------------------------------------------------------- rendering

function showAlert(text) {
  $("alert-text").textContent = text;
  $("alert").hidden = false;
}

function clearAlert() {
  $("alert").hidden = true;
  $("alert-text").textContent = "";
}

function setStatus(text) {
  $("list-status").textContent = text;
}

function renderSkeletons(count = LIMIT) {
  const list = $("books");
  list.setAttribute("aria-busy", "true");
  list.replaceChildren(
    ...Array.from({ length: count }, () => {
      const card = document.createElement("li");
      card.className = "card skeleton";
      card.setAttribute("aria-hidden", "true");
      const cover = document.createElement("div");
      cover.className = "cover";
      const body = document.createElement("div");
      body.className = "card-body";
      for (const width of ["wide", "mid", "short"]) {
        const line = document.createElement("div");
        line.className = `line ${width}`;
        body.append(line);
      }
      card.append(cover, body);
      return card;
    }),
  );
}

const hasCover = (url) => typeof url === "string" && /^https?:\/\//.test(url) && !url.includes("nophoto");

function coverInto(cover, book) {
  const fallback = cover.querySelector(".cover-fallback");
  fallback.textContent = (book.title.trim()[0] ?? "?").toUpperCase();
  if (!hasCover(book.imageUrl)) return;
  const image = document.createElement("img");
  image.alt = "";
  image.loading = "lazy";
  image.decoding = "async";
  image.referrerPolicy = "no-referrer";
  image.width = 88;
  image.height = 132;
  image.addEventListener("error", () => {
    image.remove();
    fallback.hidden = false;
  });
  image.src = book.imageUrl;
  fallback.hidden = true;
  cover.prepend(image);
}

function card(book, recommendation) {
  const item = $("card-template").content.firstElementChild.cloneNode(true);
  item.dataset.bookId = book.id;
  coverInto(item.querySelector(".cover"), book);
  item.querySelector(".title").textContent = book.title;
  item.querySelector(".authors").textContent = book.authors.join(", ");
  if (recommendation) {
    const badge = item.querySelector(".badge");
    badge.textContent = recommendation.source;
    badge.classList.add(recommendation.source.toLowerCase());
    badge.title =
      recommendation.source === "COLLABORATIVE"
        ? "Readers whose ratings resemble this reader's liked it"
        : "Popular with everyone: not enough ratings yet to personalise";
    item.querySelector(".score").textContent = `score ${recommendation.score.toFixed(2)}`;
    starsInto(item.querySelector(".stars"), book, item);
  } else {
    item.querySelector(".stars").remove();
  }
  return item;
}

function starsInto(group, book, item) {
  group.setAttribute("aria-label", `Rate “${book.title}”`);
  for (let stars = 1; stars <= 5; stars += 1) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "★";
    button.setAttribute("aria-label", `Rate ${stars} of 5 stars`);
    button.addEventListener("click", () => rate(book, stars, item));
    group.append(button);
  }
}

function renderBooks(cards, emptyText) {
  const list = $("books");
  list.setAttribute("aria-busy", "false");
  if (cards.length === 0) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = emptyText;
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...cards);
}

function renderUser(user) {
  state.shownUser = user;
  keepingFocus(() =>
    renderBooks(
      user.recommendations.map((recommendation) => card(recommendation.book, recommendation)),
      "No recommendations: this reader has rated every book we could suggest.",
    ),
  );
  renderRatings(user.ratings);
}

/** Re-rendering the list must not drop a keyboard user's focus: put it back on the same star, or the heading. */
function keepingFocus(render) {
  const focused = document.activeElement;
  const wasInList = $("books").contains(focused);
  const bookId = focused?.closest?.("li.card")?.dataset.bookId;
  const label = focused?.getAttribute?.("aria-label");
  render();
  if (!wasInList) return;
  const again = bookId && $("books").querySelector(`li[data-book-id="${CSS.escape(bookId)}"] button[aria-label="${label}"]`);
  (again ?? $("list-heading")).focus();
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

function renderRatings(ratings) {
  const sorted = [...ratings].sort((a, b) => b.ratedAt.localeCompare(a.ratedAt));
  const shown = state.ratingsExpanded ? sorted : sorted.slice(0, RATINGS_SHOWN);
  $("ratings-section").hidden = false;
  $("ratings-count").textContent =
    sorted.length === 0 ? "No ratings yet." : `${sorted.length} book${sorted.length === 1 ? "" : "s"} rated`;
  $("ratings").replaceChildren(
    ...shown.map((rating) => {
      const row = document.createElement("li");
      const title = document.createElement("span");
      title.className = "rated-title";
      title.textContent = rating.book.title;
      const stars = document.createElement("span");
      stars.className = "rated-stars";
      stars.textContent = "★".repeat(rating.rating) + "☆".repeat(5 - rating.rating);
      stars.setAttribute("aria-label", `${rating.rating} of 5 stars`);
      const when = document.createElement("time");
      when.dateTime = rating.ratedAt;
      when.textContent = dateFormat.format(new Date(rating.ratedAt));
      row.append(title, stars, when);
      return row;
    }),
  );
  const more = $("ratings-more");
  more.hidden = sorted.length <= RATINGS_SHOWN;
  more.textContent = state.ratingsExpanded ? "Show fewer" : `Show all ${sorted.length} ratings`;
}

// ---------------------------------------------------------------- loading

async function showPopular() {
  const view = ++state.view;
  $("list-heading").textContent = "Popular books";
  $("ratings-section").hidden = true;
  renderSkeletons();
  setStatus("Loading popular books…");
  try {
    const data = await graphql("PopularBooks", { limit: LIMIT });
    if (view !== state.view) return;
    renderBooks(data.popularBooks.map((book) => card(book, null)), "The catalogue is empty.");
    setStatus("Choose a reader above to see their recommendations.");
  } catch (error) {
    if (view !== state.view) return;
    renderBooks([], "Nothing to show.");
    setStatus("");
    showAlert(explain(error));
  }
}

async function showUser(userId) {
  const view = ++state.view;
  state.userId = userId;
  state.shownUser = null;
  state.ratingsExpanded = false;
  rememberUser(userId);
  history.replaceState(null, "", `?user=${encodeURIComponent(userId)}`);
  $("list-heading").textContent = `Recommendations for reader ${userId}`;
  $("ratings-count").textContent = "";
  $("ratings").replaceChildren();
  $("ratings-more").hidden = true;
  renderSkeletons();
  setStatus("Loading recommendations…");
  try {
    const data = await graphql("UserPage", { id: userId, limit: LIMIT });
    if (view !== state.view) return;
    renderUser(data.user);
    setStatus(signedInHint());
  } catch (error) {
    if (view !== state.view) return;
    renderBooks([], "Nothing to show.");
    setStatus("");
    showAlert(explain(error));
  }
}

function signedInHint() {
  if (!state.claims) return "Sign in with a token to rate these books.";
  return mayActFor(state.userId) ? "Rate a book with the stars; your list updates at once." : `Signed in as ${state.claims.sub}: you can browse, but only rate as ${state.claims.sub}.`;
}

// ---------------------------------------------------------------- rating

const isAdmin = (claims) => Array.isArray(claims?.roles) && claims.roles.includes("admin");
const mayActFor = (userId) => state.claims && (state.claims.sub === userId || isAdmin(state.claims));

async function rate(book, stars, item) {
  clearAlert();
  if (!state.token || isExpired(state.claims)) {
    signOut();
    showAlert("Sign in to rate: paste a token from make serve into the sign-in box.");
    $("token").focus();
    return;
  }
  if (!mayActFor(state.userId)) {
    showAlert(`You are signed in as reader ${state.claims.sub}, so you can rate only as ${state.claims.sub} (or sign in with an admin token).`);
    return;
  }
  const userId = state.userId;
  const view = ++state.view;
  const before = state.shownUser;
  // The rated book leaves at once; the new list replaces the rest when the server answers.
  moveFocusFrom(item);
  item.classList.add("leaving");
  setTimeout(() => item.remove(), matchMedia("(prefers-reduced-motion: reduce)").matches ? 0 : LEAVE_MS);
  setStatus(`Saving ${stars} of 5 stars for “${book.title}” and updating your list…`);
  try {
    const data = await graphql("RateBook", { userId, bookId: book.id, rating: stars, limit: LIMIT }, state.token);
    if (view !== state.view) return;
    renderUser(data.rateBook.user);
    setStatus(`Rated “${book.title}” ${stars} of 5 stars. Your recommendations are updated.`);
  } catch (error) {
    showAlert(explain(error)); // even for a superseded view: the person must learn the rating was not saved
    if (view !== state.view) return;
    if (before) renderUser(before);
    setStatus("");
  }
}

function moveFocusFrom(item) {
  if (!item.contains(document.activeElement)) return;
  const next = item.nextElementSibling ?? item.previousElementSibling;
  const target = next?.querySelector(".stars button");
  (target ?? $("list-heading")).focus();
}

// ---------------------------------------------------------------- sign-in

function readClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.sub === "string" && claims.sub ? claims : null;
  } catch {
    return null;
  }
}

const isExpired = (claims) => typeof claims?.exp === "number" && claims.exp * 1000 <= Date.now();

function signIn(token) {
  const claims = readClaims(token);
  if (!claims) {
    showAlert("That does not look like a sign-in token. Paste the whole token make serve printed: three parts separated by dots.");
    return false;
  }
  if (isExpired(claims)) {
    showAlert("That token has expired. Get a fresh one from make serve (or bookrec token --user ID).");
    return false;
  }
  state.token = token;
  state.claims = claims;
  sessionStorage.setItem(TOKEN_KEY, token);
  renderSignIn();
  return true;
}

function signOut() {
  state.token = null;
  state.claims = null;
  sessionStorage.removeItem(TOKEN_KEY);
  renderSignIn();
}

function renderSignIn() {
  const signedIn = Boolean(state.claims);
  $("signin-row").hidden = signedIn;
  $("signed-in-row").hidden = !signedIn;
  $("token").value = "";
  if (signedIn) {
    const expires = state.claims.exp ? `, until ${new Date(state.claims.exp * 1000).toLocaleTimeString()}` : "";
    $("signed-in-as").textContent = `Signed in as reader ${state.claims.sub}${isAdmin(state.claims) ? " (admin)" : ""}${expires}.`;
    $("signin-hint").textContent = "Your token stays in this tab only.";
  } else {
    $("signin-hint").textContent = "Browsing needs no token. make serve prints one.";
  }
  renderKnownUsers();
  if (state.userId && state.shownUser) setStatus(signedInHint());
}

// ---------------------------------------------------------------- readers to pick from

function recentUsers() {
  try {
    const stored = JSON.parse(localStorage.getItem(RECENT_USERS_KEY) ?? "[]");
    return Array.isArray(stored) ? stored.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

function rememberUser(userId) {
  const recent = [userId, ...recentUsers().filter((id) => id !== userId)].slice(0, 8);
  localStorage.setItem(RECENT_USERS_KEY, JSON.stringify(recent));
  renderKnownUsers();
}

function renderKnownUsers() {
  const ids = [...new Set([...(state.claims ? [state.claims.sub] : []), ...recentUsers()])];
  $("known-users").replaceChildren(
    ...ids.map((id) => {
      const option = document.createElement("option");
      option.value = id;
      if (state.claims?.sub === id) option.label = "you (signed in)";
      return option;
    }),
  );
}

// ---------------------------------------------------------------- wiring

$("user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearAlert();
  const userId = $("user-id").value.trim();
  if (!userId) {
    showAlert("Type a user id first (for example 1), or pick one from the list.");
    $("user-id").focus();
    return;
  }
  showUser(userId);
});

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearAlert();
  const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
  if (!token) {
    showAlert("Paste a token first: make serve prints one for a user and one for an admin.");
    $("token").focus();
    return;
  }
  if (signIn(token) && !state.userId) {
    $("user-id").value = state.claims.sub;
    showUser(state.claims.sub);
  }
});

$("sign-out").addEventListener("click", () => {
  signOut();
  $("token").focus();
});

$("alert-close").addEventListener("click", clearAlert);

$("ratings-more").addEventListener("click", () => {
  state.ratingsExpanded = !state.ratingsExpanded;
  if (state.shownUser) renderRatings(state.shownUser.ratings);
});

const storedToken = sessionStorage.getItem(TOKEN_KEY);
if (storedToken && !signIn(storedToken)) {
  signOut();
  clearAlert();
}
renderKnownUsers();
const initialUser = new URLSearchParams(location.search).get("user");
if (initialUser) {
  $("user-id").value = initialUser;
  showUser(initialUser);
} else {
  showPopular();
}
