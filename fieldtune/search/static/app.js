// fieldtune search page: plain JavaScript, no build step, no external resources.
// Routes live in the URL hash so the browser's Back button works:
//   #search?q=...&mode=...&dim=...&k=...   results
//   #doc/<id>                              one document
//   #concepts?q=...                        concepts of the graph matching q (the best ones without q)
//   #concept/<id>                          one concept: description, neighbours by edge type, documents
// Text from the server is only ever inserted with textContent / text nodes, never as HTML.
"use strict";

(function () {
  const KEY_STORAGE = "fieldtune-api-key";
  // The modes every index offers; shown until /health (behind the key, if one is set) lists them.
  const ALL_MODES = ["dense", "bm25", "hybrid"];
  const DEFAULT_MODE = "hybrid";
  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("search-form"), q: $("q"), mode: $("mode"), dim: $("dim"), k: $("k"),
    key: $("api-key"), keyLabel: $("api-key-label"), info: $("index-info"),
    status: $("status"), error: $("error"), resultsView: $("results-view"), results: $("results"),
    docView: $("document-view"), back: $("back"), docTitle: $("doc-title"), docId: $("doc-id"),
    docConcepts: $("doc-concepts"), docText: $("doc-text"),
    navConcepts: $("nav-concepts"), conceptsView: $("concepts-view"), conceptForm: $("concept-form"),
    conceptQ: $("concept-q"), conceptStatus: $("concept-status"), conceptList: $("concept-list"),
    conceptView: $("concept-view"), conceptName: $("concept-name"), conceptAliases: $("concept-aliases"),
    conceptDescription: $("concept-description"), conceptSearch: $("concept-search"),
    conceptNeighbours: $("concept-neighbours"), conceptDocuments: $("concept-documents"),
  };
  let lastSearchHash = "";
  let requestSeq = 0;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function option(value, label, selected) {
    const node = el("option", "", label);
    node.value = String(value);
    node.selected = Boolean(selected);
    return node;
  }

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = !message;
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = els.key.value.trim();
    if (key) headers["X-API-Key"] = key;
    let response;
    try {
      response = await fetch(path, { headers });
    } catch (err) {
      throw new Error("The server cannot be reached (" + err.message + ").");
    }
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) {
      if (response.status === 401) els.keyLabel.hidden = false;
      const message = body && body.message ? body.message : "HTTP " + response.status;
      throw new Error(message);
    }
    return body;
  }

  // The snippet with each highlighted span in <mark>. Offsets count Unicode code points
  // (Python string indices), so the snippet is split into code points, not UTF-16 units.
  function highlighted(snippet, highlights) {
    const fragment = document.createDocumentFragment();
    const chars = Array.from(snippet || "");
    const spans = (highlights || [])
      .map((span) => [Number(span[0]), Number(span[1])])
      .filter(([s, e]) => Number.isInteger(s) && Number.isInteger(e) && 0 <= s && s < e && e <= chars.length)
      .sort((a, b) => a[0] - b[0]);
    let last = 0;
    for (const [start, end] of spans) {
      if (start < last) continue; // overlapping span: skip it
      fragment.append(chars.slice(last, start).join(""));
      fragment.append(el("mark", "", chars.slice(start, end).join("")));
      last = end;
    }
    fragment.append(chars.slice(last).join(""));
    return fragment;
  }

  function conceptList(concepts) {
    const list = el("ul", "concepts");
    list.setAttribute("aria-label", "Concepts");
    for (const concept of concepts) list.append(el("li", "", String(concept)));
    return list;
  }

  function conceptLink(concept) {
    const link = el("a", "concept-link", String(concept.name));
    link.href = "#concept/" + encodeURIComponent(concept.id);
    return link;
  }

  // The concept graph's concepts named in a hit's passage, each a link to the concept view.
  function chunkConceptList(concepts) {
    const list = el("ul", "chunk-concepts");
    list.setAttribute("aria-label", "Concepts in this passage");
    for (const concept of concepts) {
      const item = el("li");
      item.append(conceptLink(concept));
      list.append(item);
    }
    return list;
  }

  function renderResults(data) {
    els.results.replaceChildren();
    for (const result of data.results) {
      const item = el("li", "result");
      const heading = el("h3");
      const link = el("a", "title", result.title || result.doc_id);
      link.href = "#doc/" + encodeURIComponent(result.doc_id);
      heading.append(el("span", "rank", result.rank + "."), link,
        el("span", "score", "score " + Number(result.score).toFixed(4)));
      item.append(heading);
      item.append(el("p", "doc-ident muted", result.doc_id));
      const snippet = el("p", "snippet");
      snippet.append(highlighted(result.snippet, result.highlights));
      item.append(snippet);
      if (result.concepts && result.concepts.length) item.append(conceptList(result.concepts));
      if (result.chunk_concepts && result.chunk_concepts.length) item.append(chunkConceptList(result.chunk_concepts));
      els.results.append(item);
    }
    const n = data.results.length;
    els.status.textContent = n === 0
      ? "No results."
      : n + (n === 1 ? " result" : " results") + " (" + data.mode + ", dim " + data.dim + ", "
        + Math.round(data.took_ms) + " ms)";
  }

  function show(view) {
    els.resultsView.hidden = view !== "results";
    els.docView.hidden = view !== "document";
    els.conceptsView.hidden = view !== "concepts";
    els.conceptView.hidden = view !== "concept";
  }

  async function runSearch(params) {
    const q = params.get("q") || "";
    els.q.value = q;
    for (const name of ["mode", "dim", "k"]) {
      const value = params.get(name);
      if (value && Array.from(els[name].options).some((o) => o.value === value)) els[name].value = value;
    }
    show("results");
    if (!q.trim()) return;
    const seq = ++requestSeq;
    els.status.textContent = "Searching…";
    showError("");
    try {
      const data = await api("search?" + params.toString());
      if (seq === requestSeq) renderResults(data);
    } catch (err) {
      if (seq !== requestSeq) return;
      els.results.replaceChildren();
      els.status.textContent = "";
      showError(err.message);
    }
  }

  async function showDocument(id) {
    const seq = ++requestSeq;
    show("document");
    els.back.href = lastSearchHash || "#";
    els.docTitle.textContent = "Loading…";
    els.docId.textContent = "";
    els.docConcepts.replaceChildren();
    els.docText.textContent = "";
    showError("");
    try {
      const doc = await api("documents/" + encodeURIComponent(id));
      if (seq !== requestSeq) return;
      els.docTitle.textContent = doc.title || doc.id;
      els.docId.textContent = doc.id;
      const concepts = doc.metadata && Array.isArray(doc.metadata.concepts) ? doc.metadata.concepts : [];
      for (const concept of concepts) els.docConcepts.append(el("li", "", String(concept)));
      els.docText.textContent = doc.text;
      els.docTitle.focus();
    } catch (err) {
      if (seq !== requestSeq) return;
      els.docTitle.textContent = "Document not available";
      showError(err.message);
    }
  }

  function searchHash(q) {
    const params = new URLSearchParams({ q, mode: els.mode.value, k: els.k.value });
    if (els.dim.value) params.set("dim", els.dim.value);
    return "#search?" + params.toString();
  }

  async function showConcepts(params) {
    const q = params.get("q") || "";
    const seq = ++requestSeq;
    show("concepts");
    els.status.textContent = ""; // the search's status line belongs to the results
    els.conceptQ.value = q;
    els.conceptList.replaceChildren();
    els.conceptStatus.textContent = "Looking…";
    showError("");
    try {
      const data = await api("concepts?" + new URLSearchParams({ q, k: "50" }).toString());
      if (seq !== requestSeq) return;
      for (const concept of data.concepts) {
        const item = el("li", "concept");
        const heading = el("h3");
        heading.append(conceptLink(concept));
        heading.append(el("span", "score", concept.documents + (concept.documents === 1 ? " document" : " documents")));
        item.append(heading);
        if (concept.description) item.append(el("p", "snippet", concept.description));
        els.conceptList.append(item);
      }
      const n = data.concepts.length;
      els.conceptStatus.textContent = (n === 0 ? "No concept matches." : n + (n === 1 ? " concept" : " concepts"))
        + " (" + data.total + " in the graph)";
    } catch (err) {
      if (seq !== requestSeq) return;
      els.conceptStatus.textContent = "";
      showError(err.message);
    }
  }

  function neighbourGroup(type, neighbours) {
    const group = el("section", "neighbours");
    group.dataset.edgeType = type;
    group.append(el("h3", "", type + " (" + neighbours.length + ")"));
    const list = el("ul", "chunk-concepts");
    for (const neighbour of neighbours) {
      const item = el("li");
      item.append(conceptLink(neighbour));
      if (neighbour.evidence) item.title = neighbour.evidence;
      if (type === "generalizes" || type === "extends") {
        item.append(el("span", "muted", neighbour.direction === "out" ? " (this " + type + " it)" : " (it " + type + " this)"));
      }
      list.append(item);
    }
    group.append(list);
    return group;
  }

  async function showConcept(id) {
    const seq = ++requestSeq;
    show("concept");
    els.status.textContent = "";
    els.conceptName.textContent = "Loading…";
    for (const node of [els.conceptAliases, els.conceptDescription]) node.textContent = "";
    els.conceptNeighbours.replaceChildren();
    els.conceptDocuments.replaceChildren();
    showError("");
    try {
      const concept = await api("concepts/" + encodeURIComponent(id));
      if (seq !== requestSeq) return;
      els.conceptName.textContent = concept.name;
      els.conceptAliases.textContent = concept.aliases.length ? "Also: " + concept.aliases.join(", ") : "";
      els.conceptDescription.textContent = concept.description;
      els.conceptSearch.textContent = "Search for “" + concept.name + "”";
      els.conceptSearch.href = searchHash(concept.name);
      for (const type of concept.edge_types) {
        const neighbours = concept.neighbours[type] || [];
        if (neighbours.length) els.conceptNeighbours.append(neighbourGroup(type, neighbours));
      }
      if (!els.conceptNeighbours.children.length) els.conceptNeighbours.append(el("p", "muted", "No neighbours."));
      for (const doc of concept.document_list) {
        const item = el("li");
        if (doc.in_index) {
          const link = el("a", "", doc.title || doc.id);
          link.href = "#doc/" + encodeURIComponent(doc.id);
          item.append(link);
        } else {
          item.append(el("span", "muted", doc.id + " (not in this index)"));
        }
        els.conceptDocuments.append(item);
      }
      if (concept.documents > concept.document_list.length) {
        els.conceptDocuments.append(el("li", "muted", "… and " + (concept.documents - concept.document_list.length) + " more"));
      }
      els.conceptName.focus();
    } catch (err) {
      if (seq !== requestSeq) return;
      els.conceptName.textContent = "Concept not available";
      showError(err.message);
    }
  }

  function route() {
    const hash = location.hash.slice(1);
    if (hash.startsWith("concept/")) {
      let id;
      try { id = decodeURIComponent(hash.slice(8)); } catch (err) { id = hash.slice(8); }
      showConcept(id);
    } else if (hash === "concepts" || hash.startsWith("concepts?")) {
      showConcepts(new URLSearchParams(hash.slice(9)));
    } else if (hash.startsWith("doc/")) {
      let id;
      try { id = decodeURIComponent(hash.slice(4)); } catch (err) { id = hash.slice(4); }
      showDocument(id);
    } else if (hash.startsWith("search?")) {
      lastSearchHash = "#" + hash;
      runSearch(new URLSearchParams(hash.slice(7)));
    } else {
      show("results");
    }
  }

  function submit(event) {
    event.preventDefault();
    const q = els.q.value.trim();
    if (!q) {
      showError("Type something to search for.");
      els.q.focus();
      return;
    }
    const hash = searchHash(q);
    if (location.hash === hash) route(); // same search again: run it anyway
    else location.hash = hash;
  }

  async function init() {
    els.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
    els.key.addEventListener("change", () => sessionStorage.setItem(KEY_STORAGE, els.key.value.trim()));
    els.form.addEventListener("submit", submit);
    els.conceptForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const hash = "#concepts?" + new URLSearchParams({ q: els.conceptQ.value.trim() }).toString();
      if (location.hash === hash) route();
      else location.hash = hash;
    });
    els.back.addEventListener("click", (event) => {
      if (lastSearchHash && history.length > 1) {
        event.preventDefault();
        history.back();
      }
    });
    window.addEventListener("hashchange", route);
    let detailed = false;
    // Without the key /health says only that the server is up: read the rest once the key is typed.
    els.key.addEventListener("change", () => {
      if (!detailed && els.key.value.trim()) loadInfo().then((d) => { detailed = d; }, () => {});
    });
    try {
      detailed = await loadInfo();
    } catch (err) {
      showError(err.message);
    }
    route();
  }

  // Fill the mode, dimension and k controls and the index line from /health; true if it had the details.
  async function loadInfo() {
    const health = await api("health");
    const index = health.index || {};
    const defaults = health.defaults || {};
    els.keyLabel.hidden = !health.auth_required && !els.key.value;
    els.mode.replaceChildren(...(index.modes || ALL_MODES).map(
      (m) => option(m, m, m === (defaults.mode || DEFAULT_MODE))));
    els.dim.replaceChildren(...(index.dims || []).map(
      (d, i) => option(d, i === 0 ? d + " (full)" : String(d), i === 0)));
    els.k.value = String(defaults.k || 10);
    els.navConcepts.hidden = !(index.concepts && index.concepts.count);
    const counts = index.counts || {};
    const model = index.model && index.model.spec ? index.model.spec : "";
    els.info.textContent = [counts.documents + " documents", model, index.dimension + " dimensions"]
      .filter((part) => part && !String(part).startsWith("undefined")).join(" · ");
    return Boolean(health.index);
  }

  init();
})();
