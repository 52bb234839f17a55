// Admin: every user's tasks. Filters the list of /api/admin/tasks, links each task to its
// inspect page, and cancels an open one (list row or inspect page).
(function () {
  "use strict";
  var C = window.llmageConsole;
  var t = C.t, $ = C.$, api = C.api;
  var OPEN = ["CREATED", "SUBMITTING", "PENDING", "RUNNING"];

  function cancel(id) {
    if (!window.confirm(t("tk.cancel_confirm"))) return Promise.resolve(null);
    return api("POST", "/api/admin/tasks/" + encodeURIComponent(id) + "/cancel");
  }

  C.pages["admin-tasks"] = function () {
    var page = 1;
    var filter = $("tasks-filter");
    function query() {
      var q = new URLSearchParams(C.formJson(filter));
      q.set("page", String(page));
      q.set("page_size", "50");
      return q.toString();
    }
    async function load(more) {
      page = more ? page + 1 : 1;
      var data = await api("GET", "/api/admin/tasks?" + query());
      var tbody = $("tasks-table").querySelector("tbody");
      if (!more) tbody.replaceChildren();
      data.items.forEach(function (task) {
        var tr = document.createElement("tr");
        tr.dataset.task = task.id;
        var link = document.createElement("a");
        link.href = "/admin/tasks/" + encodeURIComponent(task.id);
        link.className = "mono";
        link.textContent = task.id;
        var first = document.createElement("td");
        first.appendChild(link);
        tr.appendChild(first);
        C.cell(tr, task.username);
        C.cell(tr, task.model);
        C.cell(tr, task.status + (task.error_message ? ": " + task.error_message : ""));
        C.cell(tr, task.quoted.amount);
        C.cell(tr, task.charged ? task.charged.amount : null);
        C.cell(tr, task.channel);
        C.cell(tr, C.when(task.created_at));
        var td = document.createElement("td");
        if (OPEN.indexOf(task.status) >= 0) {
          var b = document.createElement("button");
          b.type = "button";
          b.className = "secondary cancel";
          b.textContent = t("tk.cancel");
          b.addEventListener("click", function () {
            cancel(task.id).then(function (r) { if (r) return load(false); }).catch(function () {});
          });
          td.appendChild(b);
        }
        tr.appendChild(td);
        tbody.appendChild(tr);
      });
      $("tasks-more").hidden = !data.has_more;
    }
    C.onSubmit("tasks-filter", function () { return load(false); });
    $("tasks-more").addEventListener("click", function () { load(true).catch(function () {}); });
    load(false).catch(function () {});
  };

  C.pages["admin-task"] = function () {
    var b = $("task-cancel");
    if (!b) return;
    b.addEventListener("click", function () {
      cancel(b.dataset.task).then(function (r) {
        if (r) window.location.reload();
      }).catch(function () {});
    });
  };
})();
