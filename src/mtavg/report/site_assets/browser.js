// mtavg item browser. Model text is only ever set with textContent: nothing a model wrote becomes markup.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("mtavg-data").textContent);
  var STATUS_NAMES = {correct: "correct", partial: "partial credit", incorrect: "incorrect", invalid: "invalid"};
  var FACETS = ["evaluator", "sub", "mode", "format", "status"];
  var state = {evaluator: "", sub: "", mode: "", format: "", status: "", text: "", page: 0};
  var pageSize = data.page_size;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function byId(id) { return document.getElementById(id); }

  // The answers a filter looks at: the chosen evaluator's, or every evaluator's.
  function consideredAnswers(item) {
    if (state.evaluator !== "") {
      var one = item.answers[state.evaluator];
      return one ? [[state.evaluator, one]] : [];
    }
    return Object.keys(item.answers).map(function (k) { return [k, item.answers[k]]; });
  }

  function statusesOf(item) {
    var seen = {};
    consideredAnswers(item).forEach(function (pair) { seen[pair[1].status] = true; });
    return seen;
  }

  function matches(item, skip) {
    if (skip !== "evaluator" && state.evaluator !== "" && !item.answers[state.evaluator]) return false;
    if (skip !== "sub" && state.sub !== "" && item.sub !== state.sub) return false;
    if (skip !== "mode" && state.mode !== "" && item.mode !== state.mode) return false;
    if (skip !== "format" && state.format !== "" && item.format !== state.format) return false;
    if (skip !== "status" && state.status !== "" && !statusesOf(item)[state.status]) return false;
    if (state.text !== "") {
      var hay = (item.qid + " " + item.question).toLowerCase();
      if (hay.indexOf(state.text) < 0) return false;
    }
    return true;
  }

  // Facet values of one item: what each select would need to be for the item to show.
  function facetValues(item, facet) {
    if (facet === "evaluator") return Object.keys(item.answers);
    if (facet === "status") return Object.keys(statusesOf(item));
    return [item[facet]];
  }

  function facetCounts(facet) {
    var counts = {};
    data.items.forEach(function (item) {
      if (!matches(item, facet)) return;
      facetValues(item, facet).forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    });
    return counts;
  }

  function facetOptions(facet) {
    if (facet === "evaluator") return data.evaluators.map(function (name, i) { return [String(i), name]; });
    if (facet === "status") return data.statuses.map(function (s) { return [s, STATUS_NAMES[s] || s]; });
    return data.facets[facet];
  }

  function fillSelect(facet) {
    var select = byId("filter-" + facet);
    var counts = facetCounts(facet);
    var total = data.items.filter(function (item) { return matches(item, facet); }).length;
    select.textContent = "";
    var any = el("option", null, "all (" + total + ")");
    any.value = "";
    select.appendChild(any);
    facetOptions(facet).forEach(function (pair) {
      var option = el("option", null, pair[1] + " (" + (counts[pair[0]] || 0) + ")");
      option.value = pair[0];
      option.dataset.count = String(counts[pair[0]] || 0);
      select.appendChild(option);
    });
    select.value = state[facet];
  }

  function formatPrediction(answer) {
    if (answer.prediction == null) return answer.invalid_reason ? "— (" + answer.invalid_reason + ")" : "—";
    var text = (answer.prediction.answer || []).join(", ") || "—";
    if (answer.prediction.time && answer.prediction.time.length) text += " · time " + answer.prediction.time.join(", ");
    return text;
  }

  function formatScore(answer) {
    var text = answer.score == null ? "—" : Number(answer.score).toFixed(2);
    if (answer.time_score != null) text += " · time " + Number(answer.time_score).toFixed(2);
    return text;
  }

  function clipBlock(item) {
    var box = el("div", "clips");
    item.clips.forEach(function (clip, i) {
      var figure = el("figure", "clip");
      var label = item.clips.length > 1 ? "Clip " + (i + 1) : "Clip";
      if (clip.src) {
        var video = el("video");
        video.controls = true;
        video.preload = "none";
        video.src = clip.src;
        figure.appendChild(video);
      } else {
        figure.appendChild(el("p", "missing-clip", clip.note));
      }
      figure.appendChild(el("figcaption", null, label + " — " + clip.id));
      box.appendChild(figure);
    });
    return box;
  }

  function optionList(pairs, gold, describe) {
    var list = el("ul", "options");
    pairs.forEach(function (pair) {
      var isGold = gold.indexOf(pair[0]) >= 0;
      var li = el("li", isGold ? "gold" : null);
      li.appendChild(el("span", "label", pair[0] + "."));
      li.appendChild(el("span", "text", describe(pair)));
      if (isGold) li.appendChild(el("span", "gold-mark", "✓ gold"));
      list.appendChild(li);
    });
    return list;
  }

  // "Judged: gpt 4/5 · flash –  (unparseable judge reply)": the rationale-consistency scores behind RC.
  function formatJudges(judges) {
    return "Judged: " + judges.map(function (j) {
      return j.judge + " " + (j.score == null ? "–" : j.score + "/5") + (j.note ? " (" + j.note + ")" : "");
    }).join(" · ");
  }

  function answersTable(item) {
    var table = el("table", "answers");
    var head = el("tr");
    ["Evaluator", "Status", "Parsed", "Score", "Raw answer", "Rationale"].forEach(function (h) { head.appendChild(el("th", null, h)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    consideredAnswers(item).forEach(function (pair) {
      var answer = pair[1];
      var row = el("tr", "answer status-" + answer.status);
      row.dataset.evaluator = pair[0];
      row.appendChild(el("th", null, data.evaluators[Number(pair[0])]));
      row.appendChild(el("td", "status", STATUS_NAMES[answer.status] || answer.status));
      row.appendChild(el("td", "parsed", formatPrediction(answer)));
      row.appendChild(el("td", "score", formatScore(answer)));
      var rawCell = el("td", "raw-cell");
      rawCell.appendChild(el("pre", "raw", answer.raw == null ? "(no answer)" : answer.raw));
      if (answer.error) rawCell.appendChild(el("p", "error", "error: " + answer.error));
      row.appendChild(rawCell);
      var rationale = el("td", "rationale", answer.rationale || "—");
      if (answer.judges) rationale.appendChild(el("p", "judges", formatJudges(answer.judges)));
      row.appendChild(rationale);
      body.appendChild(row);
    });
    table.appendChild(body);
    return table;
  }

  function itemCard(item) {
    var card = el("article", "item");
    card.dataset.qid = item.qid;
    var head = el("header");
    head.appendChild(el("span", "qid", item.qid));
    head.appendChild(el("span", "tag", item.format));
    head.appendChild(el("span", "tag", item.sub + " " + item.sub_name));
    head.appendChild(el("span", "tag", item.mode_name));
    card.appendChild(head);
    card.appendChild(clipBlock(item));
    card.appendChild(el("p", "question", item.question));
    card.appendChild(optionList(item.options, item.answer, function (p) { return p[1]; }));
    if (item.time_options.length) {
      card.appendChild(el("p", "subhead", "Time windows"));
      card.appendChild(optionList(item.time_options, item.time_answer, function (p) {
        return Number(p[1]).toFixed(1) + "–" + Number(p[2]).toFixed(1) + " s";
      }));
      if (item.evidence) card.appendChild(el("p", "evidence", "Evidence: " + item.evidence));
    }
    card.appendChild(answersTable(item));
    return card;
  }

  function render() {
    FACETS.forEach(fillSelect);
    var shown = data.items.filter(function (item) { return matches(item, null); });
    var pages = Math.max(1, Math.ceil(shown.length / pageSize));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * pageSize;
    var list = byId("items");
    list.textContent = "";  // drops the old cards (and their videos)
    shown.slice(start, start + pageSize).forEach(function (item) { list.appendChild(itemCard(item)); });
    var count = byId("match-count");
    count.dataset.count = String(shown.length);
    count.textContent = shown.length + " of " + data.items.length + " items" +
      (shown.length ? " · showing " + (start + 1) + "–" + Math.min(start + pageSize, shown.length) : "");
    byId("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    byId("page-prev").disabled = state.page === 0;
    byId("page-next").disabled = state.page >= pages - 1;
  }

  FACETS.forEach(function (facet) {
    byId("filter-" + facet).addEventListener("change", function (event) {
      state[facet] = event.target.value;
      state.page = 0;
      render();
    });
  });
  var typing = null;  // re-render once typing pauses, not on every key (11k items)
  byId("filter-text").addEventListener("input", function (event) {
    var value = event.target.value.trim().toLowerCase();
    clearTimeout(typing);
    typing = setTimeout(function () {
      state.text = value;
      state.page = 0;
      render();
    }, 150);
  });
  byId("page-prev").addEventListener("click", function () { state.page -= 1; render(); });
  byId("page-next").addEventListener("click", function () { state.page += 1; render(); });
  byId("filter-reset").addEventListener("click", function () {
    FACETS.forEach(function (facet) { state[facet] = ""; });
    state.text = "";
    state.page = 0;
    byId("filter-text").value = "";
    render();
  });
  render();
  document.body.dataset.ready = "1";
})();
