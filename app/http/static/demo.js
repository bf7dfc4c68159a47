/**
 * The demo page's model status: which adapter answers each task, and the training in progress (lorag's
 * `tasks` extension of GET /v1/models). While a first adapter trains, the base model answers, and the page says so.
 */
(function () {
  "use strict";
  var box = document.getElementById("model-status");
  if (!box) return;

  function line(task) {
    var serving = task.in_service ? "answers with " + task.in_service : "answers with the base model";
    var run = task.training;
    if (!run) return task.task + ": " + serving + ".";
    var doing = run.phase === "training" && run.total_steps
      ? "training its adapter, step " + (run.step || 0) + " of " + run.total_steps
      : run.phase + " its adapter";
    return task.task + ": " + serving + " while " + doing + ".";
  }

  function show(tasks) {
    box.textContent = "";
    tasks.forEach(function (task) {
      var item = document.createElement("li");
      item.textContent = line(task);
      box.append(item);
    });
    box.parentElement.hidden = tasks.length === 0;
    var busy = tasks.some(function (task) { return task.training; });
    window.setTimeout(poll, busy ? 3000 : 30000);
  }

  function poll() {
    fetch("/v1/models", { headers: { accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { tasks: [] }; })
      .then(function (body) { show(body.tasks || []); })
      .catch(function () { window.setTimeout(poll, 10000); });
  }

  poll();
})();
