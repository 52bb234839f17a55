// Admin: models and prices. Lists /api/admin/models; switches a model on or off; edits its
// price in currency units (the server converts them exactly to micro-units).
(function () {
  "use strict";
  var C = window.llmageConsole;
  var t = C.t, $ = C.$, api = C.api;

  function field(name, label, value) {
    var l = document.createElement("label");
    l.textContent = label + " ";
    var input = document.createElement("input");
    input.name = name;
    input.inputMode = "decimal";
    input.value = value;
    l.appendChild(input);
    return l;
  }

  C.pages["admin-models"] = function () {
    var editing = null;
    var form = $("price-form");
    function edit(m) {
      editing = m;
      $("price-model").textContent = m.display_name + " · " + m.llmid;
      var box = $("price-fields");
      box.replaceChildren();
      var p = m.price;
      if (p.rates) {
        Object.keys(p.rates).forEach(function (k) {
          var label = (k === "*" ? "" : (p.by ? p.by + " " : "") + k + " ") + "/ " + p.unit;
          box.appendChild(field("rates." + k, label, p.rates[k].amount));
        });
        Object.keys(p.settle_rates || {}).forEach(function (k) {
          box.appendChild(field("settle_rates." + k, t("md.settle") + " " + k + " / " + p.settle_unit, p.settle_rates[k].amount));
        });
      } else {
        box.appendChild(field("input_per_mtok", t("md.input"), p.input_per_mtok.amount));
        box.appendChild(field("output_per_mtok", t("md.output"), p.output_per_mtok.amount));
        if (p.cached_input_per_mtok) box.appendChild(field("cached_input_per_mtok", t("md.cached"), p.cached_input_per_mtok.amount));
      }
      form.hidden = false;
      form.scrollIntoView();
    }
    async function load() {
      var list = await api("GET", "/api/admin/models");
      var body = C.fillTable("models-table", list.data, [
        function (m) { return m.display_name + " · " + m.names.join(", ") + " · " + m.llmid; },
        function (m) { return m.kind; },
        function (m) { return m.vendor; },
        function (m) { return m.platform; },
        function (m) { return m.price_text.join("; ") + (m.overridden ? " (" + t("md.overridden") + ")" : ""); },
        function (m) { return m.enabled ? "✓" : "✗"; },
      ]);
      Array.prototype.forEach.call(body.children, function (tr, i) {
        var m = list.data[i];
        tr.dataset.llmid = m.llmid;
        var td = document.createElement("td");
        var b1 = document.createElement("button");
        b1.type = "button";
        b1.className = "secondary price";
        b1.textContent = t("md.price");
        b1.addEventListener("click", function () { edit(m); });
        var b2 = document.createElement("button");
        b2.type = "button";
        b2.className = "secondary toggle";
        b2.textContent = m.enabled ? t("admin.disable") : t("admin.enable");
        b2.addEventListener("click", function () {
          api("PATCH", "/api/admin/models/" + encodeURIComponent(m.llmid), { enabled: !m.enabled })
            .then(load).catch(function () {});
        });
        td.append(b1, b2);
        tr.appendChild(td);
      });
    }
    C.onSubmit("price-form", async function () {
      var price = {};
      new FormData(form).forEach(function (v, k) {
        var dot = k.indexOf(".");
        if (dot < 0) { price[k] = v; return; }
        var table = k.slice(0, dot);
        price[table] = price[table] || {};
        price[table][k.slice(dot + 1)] = v;
      });
      await api("PATCH", "/api/admin/models/" + encodeURIComponent(editing.llmid), { price: price });
      form.hidden = true;
      await load();
    });
    $("price-reset").addEventListener("click", function () {
      api("PATCH", "/api/admin/models/" + encodeURIComponent(editing.llmid), { reset_price: true })
        .then(function () { form.hidden = true; return load(); }).catch(function () {});
    });
    $("price-close").addEventListener("click", function () { form.hidden = true; });
    load().catch(function () {});
  };
})();
