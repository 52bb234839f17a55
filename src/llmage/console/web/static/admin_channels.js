// Admin: channels. Lists /api/admin/channels with a health column, adds a channel with the
// credential fields its provider needs, and tests, enables/disables or removes one.
(function () {
  "use strict";
  var C = window.llmageConsole;
  var t = C.t, $ = C.$, api = C.api;

  function button(label, cls, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = label;
    b.addEventListener("click", function () { onClick().catch(function () {}); });
    return b;
  }

  // One health cell; later sources (a breaker state) add their own line here.
  function health(ch) {
    var last = ch.health && ch.health.last_test;
    if (!last) return t("ch.untested");
    var when = C.when(new Date(last.at).toISOString());
    if (last.ok) return t("ch.ok") + " · " + last.latency_ms + " ms · " + when;
    return t("ch.failed") + " (" + (last.kind || last.call) + "): " + last.detail + " · " + when;
  }

  C.pages["admin-channels"] = function () {
    var providers = {};
    async function load() {
      var list = await api("GET", "/api/admin/channels");
      var body = C.fillTable("channels-table", list.data, [
        function (c) { return c.id; },
        function (c) { return c.name; },
        function (c) { return c.provider; },
        function (c) { return c.platform; },
        function (c) { return c.models.join(", "); },
        function (c) { return c.priority + " / " + c.weight; },
        function (c) { return c.enabled ? "✓" : "✗"; },
        health,
      ]);
      Array.prototype.forEach.call(body.children, function (tr, i) {
        var ch = list.data[i];
        tr.dataset.channel = ch.name;
        tr.children[7].className = "health";
        var td = document.createElement("td");
        td.appendChild(button(t("ch.test"), "secondary test", async function () {
          await api("POST", "/api/admin/channels/" + ch.id + "/test");
          await load();
        }));
        td.appendChild(button(ch.enabled ? t("admin.disable") : t("admin.enable"), "secondary toggle", async function () {
          await api("POST", "/api/admin/channels/" + ch.id + (ch.enabled ? "/disable" : "/enable"));
          await load();
        }));
        td.appendChild(button(t("ch.remove"), "secondary remove", async function () {
          if (!window.confirm(t("ch.remove_confirm"))) return;
          await api("DELETE", "/api/admin/channels/" + ch.id);
          await load();
        }));
        tr.appendChild(td);
      });
    }
    function showCredentials() {
      var spec = providers[$("channel-provider").value];
      var types = spec ? spec.credential_types : [];
      ["key", "pair", "pool"].forEach(function (kind) {
        $("cred-" + kind).hidden = types.indexOf(kind) < 0;
      });
      $("channel-base-url").placeholder = spec && spec.default_base_url ? spec.default_base_url : "";
    }
    async function loadProviders() {
      var list = await api("GET", "/api/admin/providers");
      var select = $("channel-provider");
      list.data.forEach(function (p) {
        providers[p.name] = p;
        var o = document.createElement("option");
        o.value = p.name;
        o.textContent = p.name + (p.platform !== p.name ? " (" + p.platform + ")" : "");
        select.appendChild(o);
      });
      showCredentials();
    }
    $("channel-provider").addEventListener("change", showCredentials);
    C.onSubmit("channel-add", async function (form) {
      var f = C.formJson(form);
      var spec = providers[f.provider] || { credential_types: [] };
      var body = {
        name: f.name,
        provider: f.provider,
        models: (f.models || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean),
        priority: parseInt(f.priority || "0", 10),
        weight: parseInt(f.weight || "1", 10),
      };
      if (f.base_url) body.base_url = f.base_url;
      // Only the credential the provider takes, of the kind whose fields were filled.
      if (spec.credential_types.indexOf("key") >= 0 && f.api_key) body.api_key = f.api_key;
      else if (spec.credential_types.indexOf("pair") >= 0 && f.access_key) {
        body.access_key = f.access_key;
        body.secret_key = f.secret_key || "";
      } else if (spec.credential_types.indexOf("pool") >= 0 && f.api_keys) {
        body.api_keys = f.api_keys.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
      }
      await api("POST", "/api/admin/channels", body);
      form.reset();
      showCredentials();
      await load();
    });
    loadProviders().catch(function () {});
    load().catch(function () {});
  };
})();
