// The console pages' behaviour: calls the JSON API under /api/ and writes results with
// textContent only (never innerHTML), so names and messages from users render as text.
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("llmage-i18n").textContent);
  function t(key) { return T[key] || key; }
  function $(id) { return document.getElementById(id); }

  function cookie(name) {
    var parts = document.cookie.split("; ");
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  function showError(message) {
    var box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  // One call to the JSON API; unsafe methods carry the CSRF token (double submit).
  async function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = cookie("llmage_csrf");
    if (body !== undefined) headers["Content-Type"] = "application/json";
    var res = await fetch(path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      var msg = data && data.error ? data.error.message : t("error.generic") + " (" + res.status + ")";
      showError(msg);
      var err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    showError("");
    return data;
  }

  function formJson(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) { if (v !== "") out[k] = v; });
    return out;
  }

  function onSubmit(id, handler) {
    var form = $(id);
    if (!form) return;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      handler(form).catch(function () { /* shown by api() */ });
    });
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    row.appendChild(td);
    return td;
  }

  function fillTable(id, items, columns) {
    var body = $(id).querySelector("tbody");
    body.replaceChildren();
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      columns.forEach(function (col) { cell(tr, col(item)); });
      body.appendChild(tr);
    });
    return body;
  }

  function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : null; }

  // Copy that also works on plain-http LAN deployments, where navigator.clipboard is missing.
  function copyField(input) {
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value).catch(function () { document.execCommand("copy"); });
    }
    document.execCommand("copy");
    return Promise.resolve();
  }

  function goNext() {
    var box = $("login-box");
    window.location.assign(box ? box.dataset.next : "/keys");
  }

  function smsSender(purpose) {
    var button = $("send-code");
    if (!button) return;
    button.addEventListener("click", function () {
      var phone = button.form.elements.phone.value;
      api("POST", "/api/auth/sms-code", { phone: phone, purpose: button.dataset.purpose || purpose })
        .then(function () { $("code-note").textContent = t("auth.code_sent"); })
        .catch(function () {});
    });
  }

  var pages = {
    login: function () {
      onSubmit("login-password", async function (form) {
        await api("POST", "/api/auth/login", formJson(form));
        goNext();
      });
      onSubmit("login-sms", async function (form) {
        var body = formJson(form);
        await api("POST", "/api/auth/sms-login", { phone: body.phone, code: body.code });
        goNext();
      });
      smsSender("login");
    },
    signup: function () {
      onSubmit("signup", async function (form) {
        await api("POST", "/api/auth/register", formJson(form));
        window.location.assign("/keys");
      });
      smsSender("register");
    },
    keys: function () {
      async function load() {
        var data = await api("GET", "/api/keys");
        var body = fillTable("keys-table", data.data, [
          function (k) { return k.name; },
          function (k) { return k.prefix; },
          function (k) { return k.status; },
          function (k) { return when(k.created_at); },
          function (k) { return when(k.last_used_at); },
          function (k) { return when(k.expires_at); },
          function (k) { return k.models ? k.models.join(", ") : null; },
          function (k) { return k.spend_limit ? k.spend_limit.amount : null; },
        ]);
        Array.prototype.forEach.call(body.children, function (tr, i) {
          var key = data.data[i];
          tr.dataset.keyId = key.id;
          var td = document.createElement("td");
          if (key.status === "active") {
            var b = document.createElement("button");
            b.type = "button";
            b.className = "secondary revoke";
            b.textContent = t("keys.revoke");
            b.addEventListener("click", function () {
              if (!window.confirm(t("keys.revoke_confirm"))) return;
              api("DELETE", "/api/keys/" + key.id).then(load).catch(function () {});
            });
            td.appendChild(b);
          }
          tr.appendChild(td);
        });
      }
      onSubmit("key-create", async function (form) {
        var created = await api("POST", "/api/keys", formJson(form));
        $("key-value").value = created.key;
        $("key-new").hidden = false;
        form.reset();
        await load();
      });
      $("key-copy").addEventListener("click", function () {
        copyField($("key-value")).then(function () { $("key-copied").hidden = false; });
      });
      $("webhook-show").addEventListener("click", function () {
        api("GET", "/api/webhook-secret").then(function (d) { $("webhook-secret").value = d.secret; }).catch(function () {});
      });
      $("webhook-rotate").addEventListener("click", function () {
        api("POST", "/api/webhook-secret/rotate").then(function (d) { $("webhook-secret").value = d.secret; }).catch(function () {});
      });
      load().catch(function () {});
    },
    topup: function () {
      async function balance() {
        var me = await api("GET", "/api/me");
        $("balance").textContent = me.available.amount + " " + me.currency;
      }
      async function orders() {
        var page = await api("GET", "/api/topups");
        fillTable("orders-table", page.items, [
          function (o) { return o.out_trade_no; },
          function (o) { return o.amount.amount; },
          function (o) { return o.method; },
          function (o) { return o.status; },
          function (o) { return when(o.created_at); },
        ]);
      }
      var watching = null;
      function showOrder(o) {
        $("order").hidden = false;
        $("order-no").textContent = o.out_trade_no;
        $("order-status").textContent = o.status;
        $("order-pay").hidden = !o.pay_url;
        if (o.pay_url) $("order-pay-link").href = o.pay_url;
        $("order-qr").hidden = !o.qr_code;
        if (o.qr_code) $("order-qr-img").src = "/api/topups/" + encodeURIComponent(o.out_trade_no) + "/qr.svg";
      }
      // Poll the open order until Alipay's notify has credited it (htmx-style polling, 2 s).
      function watch(no) {
        if (watching) clearInterval(watching);
        watching = setInterval(function () {
          api("GET", "/api/topups/" + encodeURIComponent(no)).then(function (o) {
            $("order-status").textContent = o.status;
            if (o.status !== "pending") {
              clearInterval(watching);
              $("order-pay").hidden = true;
              $("order-qr").hidden = true;
              balance(); orders();
            }
          }).catch(function () {});
        }, 2000);
      }
      onSubmit("topup", async function (form) {
        var o = await api("POST", "/api/topups", formJson(form));
        showOrder(o);
        watch(o.out_trade_no);
        await orders();
      });
      onSubmit("redeem", async function (form) {
        var r = await api("POST", "/api/redeem", formJson(form));
        $("redeem-note").textContent = "+" + r.credited.amount;
        form.reset();
        await balance();
      });
      balance().catch(function () {});
      orders().catch(function () {});
    },
    finance: function () {
      async function summary() {
        var s = await api("GET", "/api/finance/summary?days=30");
        $("balance").textContent = s.balance.amount + " " + s.currency;
        $("held").textContent = s.held.amount + " " + s.currency;
        $("available").textContent = s.available.amount + " " + s.currency;
        if (window.uPlot && s.days.length) {
          var xs = s.days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000; });
          var ys = s.days.map(function (d) { return d.spend.micros / 1e6; });
          var el = $("chart");
          el.replaceChildren();
          new window.uPlot({ width: Math.min(el.clientWidth || 720, 960), height: 220,
            series: [{}, { label: t("finance.daily"), stroke: "#2563eb", fill: "rgba(37,99,235,0.12)" }] },
            [xs, ys], el);
        }
      }
      async function ledger() {
        var page = await api("GET", "/api/ledger?page_size=50");
        fillTable("ledger-table", page.items, [
          function (e) { return when(e.created_at); },
          function (e) { return e.category; },
          function (e) { return e.amount.amount; },
          function (e) { return e.held_change.micros ? e.held_change.amount : null; },
          function (e) { return e.memo || e.ref; },
        ]);
      }
      function usageQuery() {
        var q = new URLSearchParams(formJson($("usage-filter")));
        return q.toString();
      }
      async function usage() {
        var q = usageQuery();
        $("usage-csv").href = "/api/usage?format=csv" + (q ? "&" + q : "");
        var page = await api("GET", "/api/usage?page_size=50" + (q ? "&" + q : ""));
        fillTable("usage-table", page.items, [
          function (u) { return when(u.created_at); },
          function (u) { return u.model; },
          function (u) { return u.kind; },
          function (u) { return u.error ? u.status + ": " + u.error : u.status; },
          function (u) { return u.amount.amount; },
        ]);
      }
      onSubmit("usage-filter", usage);
      summary().catch(function () {});
      ledger().catch(function () {});
      usage().catch(function () {});
    },
    playground: function () {
      var keyInput = $("play-key");
      keyInput.value = sessionStorage.getItem("llmage_play_key") || "";
      // Without a pasted key the page runs as the logged-in user: its session mints the user's
      // playground key (POST /api/playground/key, CSRF-checked), used like any API key.
      var minted = null;
      async function playKey() {
        var typed = keyInput.value.trim();
        if (typed) return typed;
        if (!minted) minted = (await api("POST", "/api/playground/key")).key;
        return minted;
      }
      function forgetMinted(status) { if (status === 401) minted = null; }
      var controller = null;
      // Streams /v1/chat/completions with fetch + ReadableStream (EventSource cannot POST) and
      // appends each delta as text.
      async function stream(key, model, prompt, out) {
        controller = new AbortController();
        $("play-stop").hidden = false;
        var res = await fetch("/v1/chat/completions", {
          method: "POST",
          signal: controller.signal,
          headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
          body: JSON.stringify({ model: model, stream: true, messages: [{ role: "user", content: prompt }] }),
        });
        if (!res.ok) {
          var data = null;
          try { data = await res.json(); } catch (e) { data = null; }
          forgetMinted(res.status);
          throw new Error(data && data.error ? data.error.message : "HTTP " + res.status);
        }
        var reader = res.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          buffer += decoder.decode(chunk.value, { stream: true });
          var lines = buffer.split("\n");
          buffer = lines.pop();
          lines.forEach(function (line) {
            if (line.indexOf("data:") !== 0) return;
            var payload = line.slice(5).trim();
            if (payload === "[DONE]") return;
            try {
              var event = JSON.parse(payload);
              var delta = event.choices && event.choices[0] && event.choices[0].delta;
              if (delta && delta.content) out.textContent += delta.content;
            } catch (e) { /* a partial or foreign line: skip */ }
          });
        }
      }
      $("play-stop").addEventListener("click", function () { if (controller) controller.abort(); });
      // Image / video: the form htmx loaded for the chosen model, sent as multipart to the
      // native API with the key; estimate first, then submit and poll the task until it ends.
      var media = $("media");
      function mediaBody() {
        var data = new FormData();
        new FormData(media).forEach(function (v, k) {
          if (v instanceof File ? v.size > 0 : v !== "") data.append(k, v);
        });
        return data;
      }
      async function native(path, body) {
        var key = await playKey();
        var res = await fetch(path, { method: body ? "POST" : "GET", body: body,
          headers: { Authorization: "Bearer " + key } });
        var data = null;
        try { data = await res.json(); } catch (e) { data = null; }
        if (!res.ok) {
          forgetMinted(res.status);
          var err = data && data.error;
          throw new Error(err ? (err.message || String(err)) : "HTTP " + res.status);
        }
        return data;
      }
      function fail(e) { showError(e.message); }
      $("media-estimate").addEventListener("click", function () {
        native("/llmage/estimate", mediaBody()).then(function (q) {
          $("media-price").textContent = q.amount + " " + q.currency;
          showError("");
        }).catch(fail);
      });
      // The task's progress is an htmx fragment (/playground/task/<id>) polled every 2 s;
      // the server answers 286 once the task has finished, which stops the polling.
      function watchTask(taskid) {
        var old = $("task");
        var box = old.cloneNode(false);  // a fresh element: no polling left from a previous task
        box.setAttribute("hx-get", "/playground/task/" + encodeURIComponent(taskid));
        box.hidden = false;
        old.replaceWith(box);
        if (window.htmx) window.htmx.process(box);
      }
      media.addEventListener("submit", function (ev) {
        ev.preventDefault();
        sessionStorage.setItem("llmage_play_key", keyInput.value.trim());
        native("/llmage/video", mediaBody()).then(function (sub) {
          showError("");
          watchTask(sub.taskid);
        }).catch(fail);
      });
      var form = $("chat");
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        sessionStorage.setItem("llmage_play_key", keyInput.value.trim());
        var prompt = $("play-prompt").value;
        var you = document.createElement("p");
        you.className = "you";
        you.textContent = "> " + prompt;
        var out = document.createElement("p");
        out.className = "answer";
        $("transcript").append(you, out);
        showError("");
        playKey()
          .then(function (key) { return stream(key, $("play-model").value, prompt, out); })
          .then(function () { out.classList.add("done"); })
          .catch(function (e) { if (e.name !== "AbortError") showError(e.message); })
          .finally(function () { $("play-stop").hidden = true; });
      });
    },
    admin: function () {
      function button(label, cls, onClick) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = cls;
        b.textContent = label;
        b.addEventListener("click", function () { onClick().catch(function () {}); });
        return b;
      }
      async function users() {
        var list = await api("GET", "/api/admin/users");
        var body = fillTable("users-table", list.data, [
          function (u) { return u.id; },
          function (u) { return u.username; },
          function (u) { return u.role; },
          function (u) { return u.disabled ? "✓" : ""; },
          function (u) { return u.phone; },
          function (u) { return u.balance.amount; },
          function (u) { return u.held.amount; },
        ]);
        Array.prototype.forEach.call(body.children, function (tr, i) {
          var u = list.data[i];
          tr.dataset.userId = u.id;
          var td = document.createElement("td");
          td.appendChild(button(u.disabled ? t("admin.enable") : t("admin.disable"), "secondary toggle", async function () {
            await api("PATCH", "/api/admin/users/" + u.id, { disabled: !u.disabled });
            await users();
          }));
          td.appendChild(button(u.role === "admin" ? t("admin.make_user") : t("admin.make_admin"), "secondary role", async function () {
            await api("PATCH", "/api/admin/users/" + u.id, { role: u.role === "admin" ? "user" : "admin" });
            await users();
          }));
          tr.appendChild(td);
        });
      }
      async function codes() {
        var page = await api("GET", "/api/admin/redeem-codes?page_size=50");
        fillTable("codes-table", page.items, [
          function (c) { return c.id; },
          function (c) { return c.prefix; },
          function (c) { return c.amount.amount; },
          function (c) { return c.status + (c.redeemed_by_name ? " · " + c.redeemed_by_name : ""); },
          function (c) { return c.note; },
          function (c) { return when(c.created_at); },
        ]);
      }
      async function orders() {
        var page = await api("GET", "/api/admin/orders?page_size=50");
        fillTable("admin-orders-table", page.items, [
          function (o) { return o.out_trade_no + " · " + o.username; },
          function (o) { return o.amount.amount; },
          function (o) { return o.method; },
          function (o) { return o.status; },
          function (o) { return when(o.created_at); },
        ]);
      }
      var adjust = $("adjust");
      adjust.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = formJson(adjust);
        var direction = ev.submitter && ev.submitter.value === "debit" ? "debit" : "credit";
        api("POST", "/api/admin/users/" + encodeURIComponent(body.user_id) + "/" + direction,
          { amount: body.amount, reason: body.reason })
          .then(function () { adjust.reset(); return users(); })
          .catch(function () {});
      });
      onSubmit("codes-create", async function (form) {
        var body = formJson(form);
        body.count = parseInt(body.count, 10);
        var batch = await api("POST", "/api/admin/redeem-codes", body);
        $("codes-value").value = batch.codes.join("\n");
        $("codes-new").hidden = false;
        await codes();
      });
      users().catch(function () {});
      codes().catch(function () {});
      orders().catch(function () {});
    },
  };

  // Page scripts loaded after this one (admin sections) register here and reuse the helpers.
  window.llmageConsole = {
    pages: pages, api: api, t: t, $: $, cell: cell, fillTable: fillTable, when: when,
    formJson: formJson, onSubmit: onSubmit, showError: showError,
  };

  document.addEventListener("DOMContentLoaded", function () {
    var out = $("logout");
    if (out) {
      out.addEventListener("click", function () {
        api("POST", "/api/auth/logout").finally(function () { window.location.assign("/"); });
      });
    }
    // Copy buttons anywhere (model plaza examples): data-target names the field to copy.
    Array.prototype.forEach.call(document.querySelectorAll("button.copy[data-target]"), function (b) {
      b.addEventListener("click", function () {
        copyField($(b.dataset.target)).then(function () { b.textContent = t("keys.copied"); });
      });
    });
    var init = pages[document.body.dataset.page];
    if (init) init();
  });
})();
