/*
 * lorag chat widget: answers from an organisation's documents, with their sources.
 *
 *   <script src="https://HOST/widget.js" data-api-key="lorag_..." data-kb="support"></script>
 *
 * Optional attributes: data-title, data-greeting, data-model, data-handoff-url (https: or mailto:).
 * Plain JavaScript, no build step, no dependencies. It talks only to the origin it was loaded from, keeps its
 * styles in a shadow root so the host page and the widget cannot restyle each other, and never puts model or
 * document text into HTML: every such string becomes a text node.
 */
(function () {
  "use strict";

  if (window.__loragWidget) return; // the snippet pasted twice must not make two buttons
  var script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  if (!script || !script.src) return;
  window.__loragWidget = true;

  var HISTORY_MESSAGES = 20; // earlier turns sent with a follow-up; the API takes 40 messages at most
  var QUESTION_MAX = 2000; // the API's limit for one question
  var COMMENT_MAX = 2000;
  var SVG = "http://www.w3.org/2000/svg";
  // Icons as SVG paths (Material Icons, Apache-2.0), not emoji: emoji fonts are missing on many systems.
  var ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 " +
      "7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32" +
      "c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
  };
  var ids = 0;

  function readConfig(tag) {
    var data = tag.dataset;
    return {
      // The API lives next to the script, so a deployment under a path prefix works unchanged.
      base: new URL(".", tag.src).href,
      apiKey: data.apiKey || "",
      kb: data.kb || null,
      model: data.model || null,
      title: data.title || "Help",
      greeting: data.greeting || "Ask a question about our help articles. Every answer links to its sources.",
      handoffUrl: absoluteUrl(data.handoffUrl, ["https:", "http:", "mailto:"]),
    };
  }

  /** The URL if it is absolute and uses one of `protocols`; null for anything else (javascript:, relative). */
  function absoluteUrl(value, protocols) {
    if (!value || !/^[a-z][a-z0-9+.-]*:/i.test(value)) return null;
    try {
      var url = new URL(value);
      return protocols.indexOf(url.protocol) >= 0 ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  function nextId(prefix) {
    ids += 1;
    return "lorag-" + prefix + "-" + ids;
  }

  /** An element; attribute values null/false are left out, strings in `children` become text nodes. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      node.setAttribute(name, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) { node.append(child); });
    return node;
  }

  function icon(name) {
    var svg = document.createElementNS(SVG, "svg");
    var path = document.createElementNS(SVG, "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "icon");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  // --- the page ----------------------------------------------------------------------------------------------

  function mount(cfg) {
    var host = el("div", { id: "lorag-widget" });
    var root = host.attachShadow({ mode: "open" });
    applyStyles(root);
    var ui = buildUi(cfg);
    root.append(ui.launcher, ui.panel);
    document.body.append(host);
    var chat = { config: cfg, ui: ui, root: root, history: [], busy: false, tip: null };
    wire(chat);
    ui.log.append(el("p", { class: "note" }, [cfg.greeting]));
  }

  function applyStyles(root) {
    // A constructed sheet is not an inline <style>, so host pages with a strict CSP still style the widget.
    if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function") {
      try {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
        return;
      } catch (error) { /* older engines: fall back to a <style> element */ }
    }
    root.append(el("style", {}, [CSS]));
  }

  function buildUi(cfg) {
    var panelId = nextId("panel");
    var inputId = nextId("input");
    var launcher = el("button", {
      type: "button", class: "launcher", "aria-haspopup": "dialog", "aria-expanded": "false",
      "aria-controls": panelId,
    }, [icon("chat"), "Ask a question"]);
    var close = el("button", { type: "button", class: "close", "aria-label": "Close chat" }, ["\u00D7"]);
    var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
    var input = el("input", {
      id: inputId, type: "text", autocomplete: "off", maxlength: QUESTION_MAX, placeholder: "Type your question\u2026",
    });
    var send = el("button", { type: "submit", class: "send" }, ["Send"]);
    var form = el("form", { class: "ask" }, [
      el("label", { for: inputId, class: "sr-only" }, ["Your question"]), input, send,
    ]);
    var panel = el("div", {
      id: panelId, class: "panel", role: "dialog", "aria-modal": "true", "aria-label": cfg.title + " chat",
      hidden: true,
    }, [el("div", { class: "head" }, [el("h2", {}, [cfg.title]), close]), log, form]);
    return { launcher: launcher, close: close, panel: panel, log: log, form: form, input: input, send: send };
  }

  function wire(chat) {
    var ui = chat.ui;
    ui.launcher.addEventListener("click", function () {
      if (ui.panel.hidden) openPanel(chat);
      else closePanel(chat);
    });
    ui.close.addEventListener("click", function () { closePanel(chat); });
    ui.panel.addEventListener("keydown", function (event) { onPanelKey(chat, event); });
    ui.form.addEventListener("submit", function (event) {
      event.preventDefault();
      var question = ui.input.value.trim();
      if (!question || chat.busy) return;
      ui.input.value = "";
      ask(chat, question);
    });
  }

  function openPanel(chat) {
    chat.ui.panel.hidden = false;
    chat.ui.launcher.setAttribute("aria-expanded", "true");
    chat.ui.input.focus();
  }

  function closePanel(chat) {
    hideTip(chat);
    chat.ui.panel.hidden = true;
    chat.ui.launcher.setAttribute("aria-expanded", "false");
    chat.ui.launcher.focus();
  }

  function onPanelKey(chat, event) {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      // The first Escape dismisses an open source preview (WCAG 1.4.13), the next one closes the panel.
      if (!hideTip(chat)) closePanel(chat);
    } else if (event.key === "Tab") {
      trapFocus(chat, event);
    }
  }

  /** Tab and Shift+Tab cycle inside the open panel, as in any modal dialog. */
  function trapFocus(chat, event) {
    var selector = "a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), [tabindex='0']";
    var focusable = Array.prototype.filter.call(chat.ui.panel.querySelectorAll(selector), function (node) {
      return node.getClientRects().length > 0; // skips what sits in a hidden feedback form
    });
    if (!focusable.length) return;
    var first = focusable[0];
    var last = focusable[focusable.length - 1];
    var current = chat.root.activeElement;
    if (event.shiftKey && (current === first || focusable.indexOf(current) < 0)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (current === last || focusable.indexOf(current) < 0)) {
      event.preventDefault();
      first.focus();
    }
  }

  // --- asking ------------------------------------------------------------------------------------------------

  async function ask(chat, question) {
    setBusy(chat, true);
    chat.ui.log.append(el("div", { class: "msg user" }, [el("span", { class: "sr-only" }, ["You: "]), question]));
    var reply = appendReply(chat.ui.log);
    var messages = chat.history.concat([{ role: "user", content: question }]);
    try {
      var final = await streamAnswer(chat.config, messages, function (draft, chunks) {
        showDraft(chat, reply, draft, chunks);
      });
      showFinal(chat, reply, question, final);
      chat.history = messages.concat([{ role: "assistant", content: final.answer }]).slice(-HISTORY_MESSAGES);
    } catch (error) {
      showError(chat, reply, error);
    } finally {
      setBusy(chat, false);
    }
  }

  function setBusy(chat, busy) {
    // The button stays enabled (a disabled button drops keyboard focus); a submit while busy is ignored.
    chat.busy = busy;
    chat.ui.send.setAttribute("aria-disabled", busy ? "true" : "false");
  }

  function appendReply(log) {
    var text = el("span", { class: "text" }, ["Searching the documentation\u2026"]);
    // aria-busy: screen readers wait for the finished answer instead of reading every streamed word.
    var node = el("div", { class: "msg bot", "data-state": "waiting", "data-chunks": "0", "aria-busy": "true" },
      [el("span", { class: "sr-only" }, ["Assistant: "]), text]);
    log.append(node);
    log.scrollTop = log.scrollHeight;
    return { node: node, text: text };
  }

  function headers(cfg) {
    var result = { "Content-Type": "application/json", Accept: "text/event-stream, application/json" };
    if (cfg.apiKey) result.Authorization = "Bearer " + cfg.apiKey;
    return result;
  }

  function chatBody(cfg, messages) {
    var body = { messages: messages, stream: true };
    if (cfg.kb) body.kb = cfg.kb;
    if (cfg.model) body.model = cfg.model;
    return JSON.stringify(body);
  }

  /** POST the conversation and read the SSE stream: draft deltas to `onDraft`, then the final chunk. */
  async function streamAnswer(cfg, messages, onDraft) {
    var response = await fetch(cfg.base + "v1/chat/completions", {
      method: "POST", headers: headers(cfg), body: chatBody(cfg, messages), credentials: "omit",
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    var draft = "";
    var chunks = 0;
    var final = null;
    for await (var data of sseData(response.body)) {
      if (data === "[DONE]") break;
      var chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || "The answer failed.");
      var choice = chunk.choices && chunk.choices[0];
      var delta = choice && choice.delta && choice.delta.content;
      if (delta) {
        draft += delta;
        chunks += 1;
        onDraft(draft, chunks);
      }
      if (typeof chunk.answer === "string") final = chunk;
    }
    if (!final) throw new Error("The answer was cut off. Please try again.");
    return final;
  }

  /** The `data:` payload of each server-sent event in a fetch body (EventSource cannot POST). */
  async function* sseData(body) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    try {
      for (;;) {
        var read = await reader.read();
        buffer += decoder.decode(read.value || new Uint8Array(0), { stream: !read.done });
        var events = buffer.split(/\r?\n\r?\n/);
        buffer = read.done ? "" : events.pop();
        for (var i = 0; i < events.length; i += 1) {
          var data = dataOf(events[i]);
          if (data !== null) yield data;
        }
        if (read.done) return;
      }
    } finally {
      reader.releaseLock();
    }
  }

  function dataOf(event) {
    var lines = event.split(/\r?\n/).filter(function (line) { return line.indexOf("data:") === 0; });
    if (!lines.length) return null;
    return lines.map(function (line) { return line.slice(5).replace(/^ /, ""); }).join("\n");
  }

  async function errorMessage(response) {
    try {
      var body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (error) { /* not JSON: a proxy's error page */ }
    return "The assistant is unavailable right now (HTTP " + response.status + "). Please try again later.";
  }

  function showDraft(chat, reply, draft, chunks) {
    var log = chat.ui.log;
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    reply.node.setAttribute("data-state", "streaming");
    reply.node.setAttribute("data-chunks", String(chunks));
    reply.text.textContent = draft;
    if (atBottom) log.scrollTop = log.scrollHeight; // follow the text unless the reader scrolled up
  }

  function showFinal(chat, reply, question, final) {
    // The verified answer replaces the draft: sentences whose citations did not check out are gone from it.
    reply.text.textContent = final.answer;
    var citations = Array.isArray(final.citations) ? final.citations : [];
    if (citations.length) reply.node.append(sourcesList(chat, citations));
    var related = Array.isArray(final.related) ? final.related : [];
    if (related.length) reply.node.append(relatedList(chat, related));
    if (final.handoff) reply.node.append(handoffAction(chat.config, question));
    reply.node.append(feedbackBox(chat, question, final));
    reply.node.setAttribute("data-abstained", final.abstained ? "true" : "false");
    reply.node.setAttribute("data-state", "done");
    reply.node.setAttribute("aria-busy", "false");
    chat.ui.log.scrollTop = chat.ui.log.scrollHeight;
  }

  function showError(chat, reply, error) {
    var network = error instanceof TypeError; // what fetch throws when the server cannot be reached
    reply.text.textContent = network ? "The assistant could not be reached. Please try again." : error.message;
    reply.node.classList.add("error");
    reply.node.setAttribute("data-state", "error");
    reply.node.setAttribute("aria-busy", "false");
  }

  // --- sources -----------------------------------------------------------------------------------------------

  function sourcesList(chat, citations) {
    var list = el("ol", { class: "sources", "aria-label": "Sources" });
    citations.forEach(function (citation) { list.append(sourceItem(chat, citation)); });
    return list;
  }

  // Offered with an abstention: articles that may help, marked as such, never presented as the answer.
  function relatedList(chat, related) {
    var list = el("ul", { class: "sources", "aria-label": "Related help articles" });
    related.forEach(function (article) {
      var item = sourceItem(chat, { title: article.title, source: article.source, section: article.section,
        page: article.page, url: article.url, snippet: article.snippet }, "related-link");
      list.append(item);
    });
    return el("div", { class: "related-box" }, [el("p", { class: "related-title" }, ["Related help articles:"]), list]);
  }

  function sourceLabel(citation) {
    var title = citation.title || citation.source || "Source";
    var section = (Array.isArray(citation.section) ? citation.section : []).filter(function (heading, index) {
      return heading && !(index === 0 && heading === title); // a page's first heading is often its title
    });
    var label = (citation.marker ? "[" + citation.marker + "] " : "") + title;
    if (section.length) label += " \u2014 " + section.join(" \u203A ");
    if (citation.page) label += ", p. " + citation.page;
    return label;
  }

  function sourceItem(chat, citation, linkClass) {
    // Only the link the server checked at upload (`url`), and only http(s) with a host: a file name such as
    // "https:evil.example.md" is a name, never a link to another host.
    var href = /^https?:\/\/[^\/\s]/i.test(citation.url || "") ? absoluteUrl(citation.url, ["https:", "http:"]) : null;
    var tipId = nextId("tip");
    // A source without a link goes nowhere but stays focusable so its excerpt can be read.
    var link = el("a", {
      class: linkClass || "citation", href: href, target: href && "_blank", rel: href && "noopener noreferrer",
      tabindex: href ? null : "0", "aria-describedby": tipId,
    }, [sourceLabel(citation)]);
    var tip = el("span", { id: tipId, role: "tooltip", class: "tip", hidden: true },
      [citation.snippet || "No excerpt available."]);
    var item = el("li", {}, [link, tip]);
    link.addEventListener("focus", function () { showTip(chat, tip); });
    link.addEventListener("blur", function () { hideTip(chat); });
    // On the item, not the link, so the pointer can move onto the excerpt without it vanishing (WCAG 1.4.13).
    item.addEventListener("mouseenter", function () { showTip(chat, tip); });
    item.addEventListener("mouseleave", function () { hideTip(chat); });
    return item;
  }

  function showTip(chat, tip) {
    hideTip(chat);
    tip.hidden = false;
    chat.tip = tip;
  }

  /** Hides the open excerpt; true if there was one. */
  function hideTip(chat) {
    if (!chat.tip) return false;
    chat.tip.hidden = true;
    chat.tip = null;
    return true;
  }

  // --- handoff and feedback ----------------------------------------------------------------------------------

  function handoffAction(cfg, question) {
    if (!cfg.handoffUrl) {
      return el("p", { class: "handoff" }, ["Need more help? Please contact our support team."]);
    }
    var mail = cfg.handoffUrl.indexOf("mailto:") === 0;
    // A mail handoff carries the question, so nobody has to ask it twice.
    var href = mail && !/[?&]body=/i.test(cfg.handoffUrl)
      ? cfg.handoffUrl + (cfg.handoffUrl.indexOf("?") >= 0 ? "&" : "?") + "body=" + encodeURIComponent(question)
      : cfg.handoffUrl;
    var link = el("a", { class: "handoff-link", href: href, target: mail ? null : "_blank",
      rel: mail ? null : "noopener noreferrer" }, ["Talk to a person"]);
    return el("p", { class: "handoff" }, ["I couldn't fully answer this. ", link]);
  }

  function feedbackBox(chat, question, final) {
    var state = { rating: null };
    var up = el("button", { type: "button", class: "thumb", "aria-pressed": "false", "aria-label": "Helpful" },
      [icon("up")]);
    var down = el("button", { type: "button", class: "thumb", "aria-pressed": "false", "aria-label": "Not helpful" },
      [icon("down")]);
    var commentId = nextId("comment");
    var comment = el("textarea", { id: commentId, rows: "2", maxlength: COMMENT_MAX });
    var form = el("form", { class: "comment", hidden: true }, [
      el("label", { for: commentId }, ["Add a comment (optional)"]), comment,
      el("button", { type: "submit", class: "send-feedback" }, ["Send feedback"]),
    ]);
    var status = el("p", { class: "status", role: "status", tabindex: "-1" });
    var box = el("div", { class: "feedback", role: "group", "aria-label": "Was this answer helpful?" },
      [el("span", { class: "ask-rating", "aria-hidden": "true" }, ["Helpful?"]), up, down, form, status]);
    function choose(rating) {
      state.rating = state.rating === rating ? null : rating; // pressing a pressed thumb takes it back
      up.setAttribute("aria-pressed", String(state.rating === 1));
      down.setAttribute("aria-pressed", String(state.rating === -1));
      form.hidden = false;
      form.scrollIntoView({ block: "nearest" });
    }
    up.addEventListener("click", function () { choose(1); });
    down.addEventListener("click", function () { choose(-1); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitFeedback(chat, { question: question, final: final, rating: state.rating, comment: comment.value },
        { box: box, form: form, status: status, thumbs: [up, down] });
    });
    return box;
  }

  async function submitFeedback(chat, given, parts) {
    var comment = given.comment.trim();
    if (given.rating === null && !comment) {
      parts.status.textContent = "Choose thumbs up or down, or write a comment.";
      return;
    }
    try {
      await postFeedback(chat.config, feedbackBody(chat.config, given, comment));
    } catch (error) {
      parts.status.textContent = error instanceof TypeError ? "Feedback could not be sent. Please try again."
        : error.message;
      return;
    }
    parts.form.hidden = true;
    parts.thumbs.forEach(function (thumb) { thumb.hidden = true; });
    parts.box.setAttribute("data-sent", "true");
    parts.status.textContent = "Thanks for your feedback.";
    parts.status.focus(); // the focused button is gone; keep focus in the dialog, where the message is
  }

  function feedbackBody(cfg, given, comment) {
    var body = { question: given.question, answer: given.final.answer, channel: "widget",
                 answer_token: given.final.answer_token };
    if (given.rating !== null) body.rating = given.rating;
    if (comment) body.comment = comment;
    if (given.final.model) body.model = given.final.model;
    if (Array.isArray(given.final.citations) && given.final.citations.length) body.citations = given.final.citations;
    if (cfg.kb) body.kb = cfg.kb;
    return body;
  }

  async function postFeedback(cfg, body) {
    var response = await fetch(cfg.base + "v1/feedback", {
      method: "POST", headers: headers(cfg), body: JSON.stringify(body), credentials: "omit",
    });
    if (!response.ok) throw new Error(await errorMessage(response));
  }

  // --- styles ------------------------------------------------------------------------------------------------

  // Colours come from custom properties, which do cross the shadow boundary: a site sets --lorag-accent on
  // #lorag-widget to use its own brand colour.
  var CSS = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; }",
    "[hidden] { display: none !important; }",
    ".launcher, .panel { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }",
    ".launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; display: flex;",
    "  align-items: center; gap: 8px; min-height: 48px; padding: 12px 18px; border: 0; border-radius: 999px;",
    "  background: var(--lorag-accent, #b4410c); color: var(--lorag-on-accent, #fff); font-weight: 600;",
    "  box-shadow: 0 4px 14px rgba(0,0,0,.25); cursor: pointer; }",
    "button:focus-visible, a:focus-visible, input:focus-visible, textarea:focus-visible,",
    "[tabindex]:focus-visible { outline: 3px solid var(--lorag-focus, #1d4ed8); outline-offset: 2px; }",
    ".panel { position: fixed; right: 20px; bottom: 84px; z-index: 2147483001; display: flex;",
    "  flex-direction: column; width: 380px; max-width: calc(100vw - 40px); height: 560px;",
    "  max-height: calc(100vh - 104px); overflow: hidden; background: #fff; color: #1f2937;",
    "  border-radius: 12px; box-shadow: 0 12px 40px rgba(0,0,0,.3); }",
    ".head { display: flex; align-items: center; justify-content: space-between; padding: 4px 4px 4px 16px;",
    "  background: var(--lorag-accent, #b4410c); color: var(--lorag-on-accent, #fff); }",
    "h2 { margin: 0; font-size: 16px; }",
    ".close { width: 44px; height: 44px; border: 0; border-radius: 8px; background: transparent; color: inherit;",
    "  font-size: 26px; line-height: 1; cursor: pointer; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px 16px; display: flex; flex-direction: column; gap: 12px; }",
    ".note { margin: 0; color: #4b5563; font-size: 14px; }",
    ".msg { max-width: 92%; padding: 8px 12px; border-radius: 12px; overflow-wrap: anywhere; }",
    ".user { align-self: flex-end; white-space: pre-wrap; background: var(--lorag-accent, #b4410c);",
    "  color: var(--lorag-on-accent, #fff); }",
    ".bot { align-self: flex-start; background: #f3f4f6; }",
    ".text { white-space: pre-wrap; }",
    ".bot[data-state='waiting'] .text, .bot[data-state='streaming'] .text { color: #4b5563; }",
    ".error .text { color: #b91c1c; }",
    ".sources { list-style: none; margin: 8px 0 0; padding: 8px 0 0; border-top: 1px solid #d1d5db;",
    "  display: flex; flex-direction: column; gap: 4px; font-size: 14px; }",
    ".sources li { position: relative; }",
    ".related-title { margin: 8px 0 0; font-size: 13px; font-weight: 600; }",
    ".related-box .sources { border-top: none; padding-top: 2px; margin-top: 2px; }",
    ".citation { color: var(--lorag-link, #1d4ed8); text-decoration: underline; cursor: pointer; }",
    "a.citation:not([href]) { cursor: help; text-decoration-style: dotted; }",
    ".related-link { color: var(--lorag-link, #1d4ed8); text-decoration: underline; cursor: pointer; }",
    "a.related-link:not([href]) { cursor: help; text-decoration-style: dotted; }",
    ".tip { position: absolute; left: 0; top: 100%; z-index: 2; width: 100%; max-height: 180px;",
    "  margin-top: 4px; padding: 8px 10px; overflow-y: auto; background: #111827; color: #f9fafb;",
    "  border-radius: 6px; font-size: 13px; white-space: normal; box-shadow: 0 4px 12px rgba(0,0,0,.3); }",
    ".handoff { margin: 8px 0 0; font-size: 14px; }",
    ".handoff-link { color: var(--lorag-link, #1d4ed8); font-weight: 600; }",
    ".feedback { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 8px;",
    "  font-size: 14px; color: #4b5563; }",
    ".icon { width: 20px; height: 20px; flex: none; fill: currentColor; }",
    ".thumb { display: inline-flex; align-items: center; justify-content: center; min-width: 40px;",
    "  min-height: 40px; border: 1px solid #9ca3af; border-radius: 8px; background: #fff; color: #374151;",
    "  cursor: pointer; }",
    ".thumb[aria-pressed='true'] { border: 2px solid var(--lorag-accent, #b4410c); background: #fff1e8;",
    "  color: var(--lorag-accent, #b4410c); }",
    ".comment { flex-basis: 100%; display: flex; flex-direction: column; gap: 6px; }",
    ".comment textarea { width: 100%; font: inherit; font-size: 16px; padding: 6px 8px; resize: vertical;",
    "  border: 1px solid #9ca3af; border-radius: 8px; }",
    ".status { flex-basis: 100%; margin: 0; }",
    ".status:empty { display: none; }",
    ".ask { display: flex; gap: 8px; padding: 12px; border-top: 1px solid #e5e7eb; }",
    ".ask input { flex: 1; min-width: 0; padding: 10px 12px; font: inherit; font-size: 16px;",
    "  border: 1px solid #9ca3af; border-radius: 8px; }",
    ".send, .send-feedback { padding: 10px 16px; border: 0; border-radius: 8px; font: inherit; font-weight: 600;",
    "  background: var(--lorag-accent, #b4410c); color: var(--lorag-on-accent, #fff); cursor: pointer; }",
    ".send-feedback { align-self: flex-start; padding: 8px 14px; }",
    ".send[aria-disabled='true'] { opacity: .6; cursor: progress; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;",
    "  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }",
    // Phones: the panel takes the whole screen; 16px inputs stop mobile browsers zooming on focus.
    "@media (max-width: 480px) {",
    "  .panel { inset: 0; width: 100%; max-width: none; height: 100%; max-height: none; border-radius: 0; }",
    "  .launcher { right: 12px; bottom: 12px; }",
    "}",
    "@media (prefers-reduced-motion: no-preference) {",
    "  .panel { animation: lorag-rise .15s ease-out; }",
    "  @keyframes lorag-rise { from { opacity: 0; transform: translateY(8px); } to { opacity: 1; transform: none; } }",
    "}",
  ].join("\n");

  // Last, so that everything above (CSS included) is defined before the widget mounts.
  var config = readConfig(script);
  if (document.body) mount(config);
  else document.addEventListener("DOMContentLoaded", function () { mount(config); });
})();
