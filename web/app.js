// Starts the rasa-webchat widget (window.WebChat from /vendor/webchat.js) in the page.
(function () {
  "use strict";

  function showError() {
    document.getElementById("chat-error").hidden = false;
  }

  function start(config) {
    if (!window.WebChat || !window.WebChat.default) {
      showError();
      return;
    }
    var socketUrl = config.socketUrl ||
      window.location.protocol + "//" + window.location.hostname + ":" + config.rasaPort;
    window.WebChat.default({
      socketUrl: socketUrl,
      socketPath: "/socket.io/",
      initPayload: "/greet",
      customData: { language: "de" },
      title: "Revierlotse",
      subtitle: "IT Manager in Duisburg",
      inputTextFieldHint: "Schreib deine Frage …",
      connectingText: "Verbinde mit Revierlotse …",
      embedded: true,
      withRules: false,
      hideWhenNotConnected: false,
      // sessionStorage: a reload keeps the conversation, every tab has its own.
      params: { storage: "session" },
      customMessageDelay: function () { return 300; },
      // Colours of the page (style.css); the widget sets them as inline styles.
      mainColor: "#334155",
      userBackgroundColor: "#334155",
      userTextColor: "#ffffff",
      assistBackgoundColor: "#f1efe9",  // sic: the widget's prop name
      assistTextColor: "#1d2430"
    }, document.getElementById("webchat"));
  }

  fetch("/config.json")
    .then(function (response) { return response.json(); })
    .then(start)
    .catch(showError);
})();
