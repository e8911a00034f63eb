// The chat widget: deep-chat (/vendor/deep-chat.js) on Rasa's socket.io channel
// (/vendor/socket.io.js), in the protocol the channel speaks: `session_request` ->
// `session_confirm`, `user_uttered` {message, session_id, customData} and
// `bot_uttered` {text, quick_replies | buttons}.
//
// What the page adds around deep-chat: the conversation in sessionStorage (a reload
// keeps it, every tab has its own), bot buttons as real <button>s, a log region that
// announces new messages to screen readers, German names for every control, and the
// controls "Neues Gespräch" and "Daten löschen".
(function () {
  "use strict";

  var STORAGE_KEY = "chat_session";
  var GREET = "/greet";
  var DELETE_DATA = "/delete_data";
  var METADATA = { language: "de" };

  // Colours of the page (style.css); each text colour has at least 4.5:1 on its background.
  var INK = "#1d2430";
  var MUTED = "#4b5563";
  var STEEL = "#334155";
  var FOCUS = "#9a3412";
  var BOT_BUBBLE = "#f1efe9";

  var config = null;
  var chat = null;
  var signals = null;
  var socket = null;
  // The session the server confirmed (or the stored one, until it does). Ids are issued
  // and signed by the server; it resumes only an id it gave out, anything else gets a new one.
  var sessionId = null;
  var conversation = [];    // the messages this tab shows, as stored (see isMessage)
  var outbox = [];          // payloads sent before the session was confirmed
  var statusTimer = null;

  function byId(id) { return document.getElementById(id); }

  // --- the conversation in this tab ---------------------------------------------------

  function restore() {
    try {
      var data = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
      if (data && typeof data === "object") {
        sessionId = typeof data.session_id === "string" ? data.session_id : null;
        conversation = Array.isArray(data.conversation) ? data.conversation.filter(isMessage) : [];
      }
    } catch (error) {
      sessionId = null;
      conversation = [];
    }
  }

  function save() {
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ session_id: sessionId, conversation: conversation }));
    } catch (error) { /* storage full or off: the chat still works, a reload starts anew */ }
  }

  // Stored: {role: "user" | "ai", text} or {role: "ai", replies: [{title, payload}]}.
  // Buttons are kept as data and built anew on restore, never stored as markup.
  function isMessage(message) {
    if (!message || (message.role !== "user" && message.role !== "ai")) return false;
    return typeof message.text === "string" || (message.role === "ai" && Array.isArray(message.replies));
  }

  function remember(message) {
    conversation.push(message);
    save();
  }

  function shown(message) {
    return message.replies ? { role: "ai", html: repliesHtml(message.replies) } : { role: message.role, text: message.text };
  }

  function forget() {
    conversation = [];
    if (chat) chat.clearMessages(false);
    save();
  }

  // --- socket.io ----------------------------------------------------------------------

  function socketUrl() {
    return config.socketUrl ||
      window.location.protocol + "//" + window.location.hostname + ":" + config.rasaPort;
  }

  function connect() {
    var current = window.io(socketUrl(), { path: "/socket.io/", transports: ["polling", "websocket"] });
    socket = current;
    current.on("connect", function () {
      if (current !== socket) return;
      byId("chat-error").hidden = true;
      current.emit("session_request", { session_id: sessionId });
    });
    current.on("session_confirm", function (id) {
      if (current === socket) confirmed(String(id));
    });
    current.on("bot_uttered", function (message) {
      if (current === socket) showBotMessage(message);
    });
    current.on("connect_error", function () {
      if (current === socket) byId("chat-error").hidden = false;
    });
    current.on("disconnect", function () {
      if (current === socket) setReady(false);
    });
  }

  function confirmed(id) {
    if (id !== sessionId) {
      // A new conversation on the server: what this tab still shows belongs to another.
      sessionId = id;
      forget();
    }
    save();
    setReady(true);
    if (!conversation.length && !outbox.length) emit(GREET);
    var waiting = outbox;
    outbox = [];
    waiting.forEach(emit);
  }

  function emit(payload) {
    if (!socket || !socket.connected || !sessionId) {
      outbox.push(payload);
      return;
    }
    socket.emit("user_uttered", { message: payload, session_id: sessionId, customData: METADATA });
  }

  function setReady(ready) {
    byId("new-conversation").disabled = !ready;
    byId("delete-data").disabled = !ready;
    if (signals) (ready ? signals.onOpen : signals.onClose)();
  }

  // --- messages -----------------------------------------------------------------------

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function validReplies(replies) {
    return (Array.isArray(replies) ? replies : []).filter(function (reply) {
      return reply && typeof reply.title === "string" && typeof reply.payload === "string";
    }).map(function (reply) { return { title: reply.title, payload: reply.payload }; });
  }

  // The bot's buttons as real buttons (keyboard, screen reader), inside a named group.
  function repliesHtml(replies) {
    var buttons = validReplies(replies).map(function (reply) {
      return '<button type="button" class="reply" data-payload="' + escapeHtml(reply.payload) + '">' +
        escapeHtml(reply.title) + "</button>";
    });
    return buttons.length
      ? '<div class="replies" role="group" aria-label="Antwortvorschläge">' + buttons.join("") + "</div>"
      : "";
  }

  function showBotMessage(message) {
    if (!message || typeof message !== "object" || !signals) return;
    var parts = [];
    if (typeof message.text === "string" && message.text.trim()) parts.push({ role: "ai", text: message.text });
    var replies = validReplies(message.quick_replies || message.buttons);
    if (replies.length) parts.push({ role: "ai", replies: replies });
    parts.forEach(function (part) {
      signals.onResponse(shown(part));
      remember(part);
    });
  }

  // What the visitor sends: shown as `text`, sent as `payload` (a button's intent).
  function say(text, payload) {
    var message = { role: "user", text: text };
    chat.addMessage(message);
    remember(message);
    emit(payload);
  }

  function replyButton(event) {
    var path = event.composedPath ? event.composedPath() : [];
    for (var i = 0; i < path.length; i++) {
      var node = path[i];
      if (node.classList && node.classList.contains("reply")) return node;
      if (node === chat) break;
    }
    return null;
  }

  // --- the controls around the chat ---------------------------------------------------

  function announce(text) {
    var status = byId("chat-status");
    status.textContent = text;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(function () { status.textContent = ""; }, 5000);
  }

  function newConversation() {
    closeDeleteQuestion(false);
    if (socket) {
      var old = socket;
      socket = null;
      old.disconnect();
    }
    sessionId = null;
    outbox = [];
    forget();
    setReady(false);
    connect();
    announce("Neues Gespräch gestartet.");
    chat.focusInput();
  }

  function askDelete() {
    byId("delete-question").hidden = false;
    byId("delete-yes").focus();
  }

  function closeDeleteQuestion(focusBack) {
    byId("delete-question").hidden = true;
    if (focusBack) byId("delete-data").focus();
  }

  function deleteData() {
    closeDeleteQuestion(false);
    // This tab's copy goes at once; the server deletes its copy and says so in its reply.
    forget();
    say("Daten löschen", DELETE_DATA);
    chat.focusInput();
  }

  function wireControls() {
    byId("new-conversation").addEventListener("click", newConversation);
    byId("delete-data").addEventListener("click", askDelete);
    byId("delete-yes").addEventListener("click", deleteData);
    byId("delete-no").addEventListener("click", function () { closeDeleteQuestion(true); });
    byId("delete-question").addEventListener("keydown", function (event) {
      if (event.key === "Escape") closeDeleteQuestion(true);
    });
  }

  // --- deep-chat ----------------------------------------------------------------------

  // Styles inside deep-chat's shadow root: focus, contrast, reduced motion, narrow screens.
  var INNER_STYLE = [
    "#messages:focus-visible { outline: 3px solid " + FOCUS + "; outline-offset: -3px; }",
    "#text-input-container:focus-within { outline: 3px solid " + FOCUS + "; outline-offset: 2px; }",
    "#text-input:focus { outline: none; }",
    ".input-button:focus-visible { outline: 3px solid " + FOCUS + "; outline-offset: 2px; }",
    "#submit-icon { stroke-width: 2; }",
    ".replies { display: flex; flex-wrap: wrap; gap: 0.5rem; }",
    ".reply { font: inherit; font-weight: 600; color: " + STEEL + "; background: #fff; border: 2px solid " + STEEL + ";" +
      " border-radius: 999px; padding: 0.35rem 0.9rem; cursor: pointer; min-height: 44px;" +
      " transition: background-color 0.15s ease, color 0.15s ease; }",
    ".reply:hover { background: " + STEEL + "; color: #fff; }",
    ".reply:focus-visible { outline: 3px solid " + FOCUS + "; outline-offset: 2px; }",
    ".message-bubble { max-width: 85%; line-height: 1.45; }",
    ".message-bubble p { margin: 0; }",
    ".message-bubble p + p { margin-top: 0.5em; }",
    ".message-bubble a { color: inherit; text-decoration: underline; }",
    "@media (prefers-reduced-motion: reduce) {",
    "  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }",
    "}"
  ].join("\n");

  function makeChat(container) {
    var element = document.createElement("deep-chat");
    element.id = "chat";
    // The page's font: with its own default deep-chat would ask Google Fonts for one.
    element.style.fontFamily = window.getComputedStyle(document.body).fontFamily;
    element.history = conversation.map(shown);
    element.remarkable = { html: false, breaks: true, typographer: false };
    element.textInput = {
      placeholder: { text: "Schreib deine Frage …", style: { color: MUTED } },
      styles: {
        container: { border: "1px solid " + MUTED, borderRadius: "10px", boxShadow: "none" },
        text: { color: INK, fontSize: "1rem", padding: "0.6rem 0.75rem" }
      }
    };
    // deep-chat's arrow icon, dark enough to see (3:1 and more); its name "Senden" comes from label().
    var icon = function (filter) { return { svg: { styles: { default: { filter: filter, width: "1.4em", height: "1.4em" } } } }; };
    element.submitButtonStyles = {
      submit: icon("brightness(0) saturate(100%)"),
      loading: icon("brightness(0) saturate(100%)"),
      disabled: icon("brightness(0) invert(45%)")
    };
    element.chatStyle = {
      width: "100%", height: "100%", border: "none", borderRadius: "0", backgroundColor: "#fff",
      fontFamily: "inherit", fontSize: "1rem", color: INK
    };
    element.inputAreaStyle = { borderTop: "1px solid #e4e0d6", backgroundColor: "#fff" };
    element.messageStyles = {
      default: {
        shared: { bubble: { fontSize: "1rem", padding: "0.6rem 0.85rem", borderRadius: "14px" } },
        ai: { bubble: { backgroundColor: BOT_BUBBLE, color: INK } },
        user: { bubble: { backgroundColor: STEEL, color: "#fff" } }
      },
      html: { ai: { bubble: { backgroundColor: "transparent", padding: "0", maxWidth: "100%" } } }
    };
    element.errorMessages = {
      displayServiceErrorMessages: false,
      overrides: { default: "Da ist etwas schiefgegangen. Versuch es bitte noch einmal." }
    };
    element.auxiliaryStyle = INNER_STYLE;
    element.connect = {
      websocket: true,
      handler: function (_, given) {
        signals = given;
        signals.newUserMessage.listener = function (body) {
          var message = body && body.messages && body.messages[0];
          if (message && typeof message.text === "string" && message.text.trim()) {
            remember({ role: "user", text: message.text });
            emit(message.text);
          }
        };
        if (!socket) connect();
      }
    };
    element.onComponentRender = keepLabelled;
    element.addEventListener("click", function (event) {
      var button = replyButton(event);
      if (button) say(button.textContent, button.getAttribute("data-payload"));
    });
    container.appendChild(element);
    return element;
  }

  // German names and the log region, on deep-chat's own elements (its shadow root is
  // open). deep-chat sets some of these itself (the field's name from its placeholder)
  // and builds elements anew at times, so they are set again whenever its tree changes.
  var NAMES = [
    ["#messages", { role: "log", "aria-live": "polite", "aria-relevant": "additions",
                    "aria-label": "Gesprächsverlauf", tabindex: "0" }],
    ["#text-input", { "aria-label": "Schreib deine Frage an den Revierlotsen", "aria-multiline": "true" }],
    [".input-button", { "aria-label": "Senden" }]
  ];

  function label(root) {
    NAMES.forEach(function (entry) {
      Array.prototype.forEach.call(root.querySelectorAll(entry[0]), function (element) {
        Object.keys(entry[1]).forEach(function (name) {
          if (element.getAttribute(name) !== entry[1][name]) element.setAttribute(name, entry[1][name]);
        });
      });
    });
  }

  function keepLabelled(element) {
    var root = element.shadowRoot;
    if (!root || root.__labelled) return;
    root.__labelled = true;
    label(root);
    new MutationObserver(function () { label(root); }).observe(root, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["aria-label", "role", "tabindex"]
    });
  }

  function start(loaded) {
    config = loaded;
    if (!window.io || !window.customElements) {
      byId("chat-error").hidden = false;
      return;
    }
    restore();
    wireControls();
    customElements.whenDefined("deep-chat").then(function () {
      chat = makeChat(byId("chat-body"));
    });
  }

  fetch("/config.json")
    .then(function (response) { return response.json(); })
    .then(start)
    .catch(function () { byId("chat-error").hidden = false; });
})();
