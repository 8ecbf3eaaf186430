// The release flow editor (web/editor.py). One template object is the source of truth: typing in the
// text replaces it with what the server read from the text; the visual mode edits it and writes the
// text again. Either way the server checks it (the same validator a save uses) and answers with the
// problems, each with its JSON path, and the drawing; only the latest answer is shown.
(function () {
  var form = document.getElementById("flow-editor");
  if (!form) return;
  var text = document.getElementById("flow-text");
  var issues = document.getElementById("flow-issues");
  var drawing = document.getElementById("flow-drawing");
  var visual = document.getElementById("visual-editor");
  var formatField = document.getElementById("flow-format");
  var formatNote = document.getElementById("format-note");
  var editable = form.dataset.editable === "yes";
  var skeletons = JSON.parse(form.dataset.skeletons);
  // kind: the kind last chosen to add (every workflow's choice shows it, across redrawings).
  // typed: the text was typed in since the last visual change. dragging: the indexes of the node dragged.
  var state = { document: null, renderings: {}, asked: 0, timer: null, focus: null, kind: "Approval", typed: false, dragging: null };

  // --- the server's check ----------------------------------------------------------------------
  function check(fromVisual) {
    window.clearTimeout(state.timer);
    var sequence = ++state.asked;
    var body = new FormData();
    body.append("csrf", form.elements.csrf.value);
    body.append("text", fromVisual ? JSON.stringify(state.document) : text.value);
    form.setAttribute("aria-busy", "true");
    return fetch(form.dataset.check, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) throw new Error("the server answered " + answer.status);
        return answer.json();
      })
      .then(function (answer) {
        if (sequence !== state.asked) return; // a newer check is under way: its answer counts
        form.removeAttribute("aria-busy");
        issues.innerHTML = answer.issues;
        drawing.innerHTML = answer.drawing;
        form.dataset.valid = answer.valid ? "yes" : "no";
        state.renderings = answer.renderings;
        if (fromVisual) {
          // The visual mode already shows this document: drawing it again would lose its focus. The
          // text becomes the server's rendering unless someone typed in it meanwhile.
          if (!state.typed) text.value = answer.renderings[formatField.value];
          return;
        }
        if (answer.document !== null) state.document = answer.document;
        drawVisual(answer.document !== null);
      })
      .catch(function (error) {
        if (sequence !== state.asked) return;
        form.removeAttribute("aria-busy");
        issues.textContent = "Could not check the template: " + error.message;
      });
  }
  text.addEventListener("input", function () {
    state.typed = true;
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(function () { check(false); }, 300);
  });

  // --- JSON or YAML: the server renders the document it read in either --------------------------
  form.querySelectorAll("button.format").forEach(function (button) {
    button.addEventListener("click", function () {
      check(false).then(function () {
        var wanted = button.dataset.format;
        if (!state.renderings[wanted]) {
          formatNote.textContent = "Fix the text first: it cannot be read, so it cannot be converted.";
          return;
        }
        formatNote.textContent = "";
        text.value = state.renderings[wanted];
        formatField.value = wanted;
        form.querySelectorAll("button.format").forEach(function (other) {
          other.setAttribute("aria-pressed", other === button ? "true" : "false");
        });
      });
    });
  });

  // --- the template object: nodes are addressed by their step indexes from the root -------------
  function pathOf(indexes) {
    return "spec" + indexes.map(function (index) { return ".spec.steps[" + index + "]"; }).join("");
  }
  function nodeAt(indexes) {
    var node = state.document.spec;
    indexes.forEach(function (index) { node = stepsOf(node)[index]; });
    return node;
  }
  function isWorkflow(node) { return node && node.kind === "Workflow"; }
  function stepsOf(node) {
    if (!node.spec || typeof node.spec !== "object") node.spec = { type: "sequential", steps: [] };
    if (!Array.isArray(node.spec.steps)) node.spec.steps = [];
    return node.spec.steps;
  }
  function labelOf(node, indexes) { return (node && node.ref) || pathOf(indexes); }
  function workflows(node, indexes, found) {
    if (!isWorkflow(node)) return found;
    found.push(indexes);
    stepsOf(node).forEach(function (child, index) { workflows(child, indexes.concat([index]), found); });
    return found;
  }
  function within(indexes, outer) {
    return outer.length <= indexes.length && outer.every(function (value, i) { return indexes[i] === value; });
  }
  function freshRef(kind) {
    var used = {};
    (function collect(node) {
      if (!node || typeof node !== "object") return;
      if (node.ref) used[node.ref] = true;
      if (isWorkflow(node)) stepsOf(node).forEach(collect);
    })(state.document.spec);
    var stem = kind.toLowerCase(), number = 1;
    while (used[stem + "-" + number]) number += 1;
    return stem + "-" + number;
  }

  // Each change edits the object, then the text follows and the server checks and draws it again.
  function change(edit, focusIndexes) {
    edit();
    state.typed = false;
    state.focus = focusIndexes ? pathOf(focusIndexes) : null;
    if (formatField.value === "json") text.value = JSON.stringify(state.document, null, 2) + "\n";
    drawVisual(true);
    check(true);
  }
  var actions = {
    up: function (indexes) {
      var parent = nodeAt(indexes.slice(0, -1)), at = indexes[indexes.length - 1];
      if (at === 0) return;
      change(function () {
        var steps = stepsOf(parent);
        steps.splice(at - 1, 0, steps.splice(at, 1)[0]);
      }, indexes.slice(0, -1).concat([at - 1]));
    },
    down: function (indexes) {
      var parent = nodeAt(indexes.slice(0, -1)), at = indexes[indexes.length - 1];
      if (at >= stepsOf(parent).length - 1) return;
      change(function () {
        var steps = stepsOf(parent);
        steps.splice(at + 1, 0, steps.splice(at, 1)[0]);
      }, indexes.slice(0, -1).concat([at + 1]));
    },
    remove: function (indexes) {
      var parent = nodeAt(indexes.slice(0, -1));
      change(function () { stepsOf(parent).splice(indexes[indexes.length - 1], 1); }, indexes.slice(0, -1));
    },
    // Into the workflow at target: at its end, or (a drop) before or after its step place.indexes.
    // The anchor is found again after the removal, since removing the node can shift its index.
    move: function (indexes, target, place) {
      var destination = nodeAt(target), parent = nodeAt(indexes.slice(0, -1));
      var moved = nodeAt(indexes), anchor = place ? nodeAt(place.indexes) : null;
      if (within(target, indexes) || anchor === moved) return; // not into itself or its own nodes
      change(function () {
        stepsOf(parent).splice(indexes[indexes.length - 1], 1);
        var steps = stepsOf(destination);
        steps.splice(anchor ? steps.indexOf(anchor) + (place.after ? 1 : 0) : steps.length, 0, moved);
      }, null);
      focusNode(moved);
    },
    add: function (indexes, kind) {
      var workflow = nodeAt(indexes);
      var node = JSON.parse(JSON.stringify(skeletons[kind]));
      node.ref = freshRef(kind);
      change(function () { stepsOf(workflow).push(node); }, indexes.concat([stepsOf(workflow).length]));
    },
    type: function (indexes, value) {
      var workflow = nodeAt(indexes);
      change(function () { stepsOf(workflow); workflow.spec.type = value; }, indexes);
    },
  };
  // After a move, the node's new path is found by looking for the node itself.
  function focusNode(node) {
    (function find(current, indexes) {
      if (current === node) { state.focus = pathOf(indexes); return true; }
      return isWorkflow(current) && stepsOf(current).some(function (child, i) { return find(child, indexes.concat([i])); });
    })(state.document.spec, []);
    drawVisual(true);
  }

  // --- the visual mode: a tree of the object, built with DOM calls (never HTML from the text) -----
  function element(tag, attributes, children) {
    var made = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { made.setAttribute(name, attributes[name]); });
    (children || []).forEach(function (child) {
      made.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return made;
  }
  function button(label, action, indexes, title) {
    return element("button", { type: "button", "data-action": action, "data-indexes": JSON.stringify(indexes), title: title, "aria-label": title }, [label]);
  }
  function item(node, indexes, all) {
    var label = labelOf(node, indexes);
    var head = element("div", { class: "v-head" }, [
      editable && indexes.length ? element("span", { class: "v-grip", draggable: "true", title: "Drag " + label + " before or after a node, or into a workflow" }, ["⠿"]) : "",
      element("span", { class: "node-name" }, [label]), " ",
      element("span", { class: "hint" }, [String(node && node.kind || "?")]),
    ]);
    if (editable) {
      var controls = element("span", { class: "v-controls" }, []);
      if (isWorkflow(node)) {
        var type = element("select", { "data-action": "type", "data-indexes": JSON.stringify(indexes), "aria-label": "Type of " + label }, []);
        ["sequential", "parallel"].forEach(function (value) {
          var option = element("option", { value: value }, [value]);
          if ((node.spec && node.spec.type) === value) option.selected = true;
          type.appendChild(option);
        });
        controls.appendChild(type);
      }
      if (indexes.length) {
        controls.appendChild(button("↑", "up", indexes, "Move " + label + " up"));
        controls.appendChild(button("↓", "down", indexes, "Move " + label + " down"));
        var targets = all.filter(function (target) {
          return !within(target, indexes) && JSON.stringify(target) !== JSON.stringify(indexes.slice(0, -1));
        });
        if (targets.length) {
          var into = element("select", { "data-action": "move", "data-indexes": JSON.stringify(indexes), "aria-label": "Move " + label + " into a workflow" }, [
            element("option", { value: "" }, ["move into…"]),
          ]);
          targets.forEach(function (target) {
            into.appendChild(element("option", { value: JSON.stringify(target) }, [labelOf(nodeAt(target), target)]));
          });
          controls.appendChild(into);
        }
        controls.appendChild(button("Remove", "remove", indexes, "Remove " + label));
      }
      head.appendChild(controls);
    }
    var holder = element("li", { class: "v-node", "data-path": pathOf(indexes), tabindex: "0", "aria-label": label + ", " + (node && node.kind) }, [head]);
    if (isWorkflow(node)) {
      var list = element("ol", { class: "v-steps" }, []);
      stepsOf(node).forEach(function (child, index) { list.appendChild(item(child, indexes.concat([index]), all)); });
      holder.appendChild(list);
      if (editable) {
        var kind = element("select", { "data-kind-for": JSON.stringify(indexes), "aria-label": "Kind of the node to add to " + label }, []);
        Object.keys(skeletons).forEach(function (name) { kind.appendChild(element("option", { value: name }, [name])); });
        kind.value = state.kind;
        holder.appendChild(element("div", { class: "v-add" }, [kind, button("Add node", "add", indexes, "Add a node to " + label)]));
      }
    }
    return holder;
  }
  function drawVisual(readable) {
    visual.textContent = "";
    var root = state.document && state.document.spec;
    if (!readable || !isWorkflow(root)) {
      visual.appendChild(element("p", { class: "hint" }, [
        "The visual mode shows a template whose text can be read and whose spec is a Workflow.",
      ]));
      return;
    }
    visual.appendChild(element("ol", { class: "v-tree" }, [item(root, [], workflows(root, [], []))]));
    if (state.focus) {
      var focused = visual.querySelector('[data-path="' + state.focus + '"]');
      if (focused) focused.focus();
      state.focus = null;
    }
  }
  visual.addEventListener("click", function (event) {
    var control = event.target.closest("button[data-action]");
    if (!control) return;
    var indexes = JSON.parse(control.dataset.indexes);
    if (control.dataset.action === "add") {
      actions.add(indexes, visual.querySelector('[data-kind-for="' + control.dataset.indexes + '"]').value);
    } else {
      actions[control.dataset.action](indexes);
    }
  });
  visual.addEventListener("change", function (event) {
    if (event.target.dataset.kindFor) state.kind = event.target.value;
    var control = event.target.closest("select[data-action]");
    if (!control || !control.value) return;
    var indexes = JSON.parse(control.dataset.indexes);
    if (control.dataset.action === "type") actions.type(indexes, control.value);
    else actions.move(indexes, JSON.parse(control.value));
  });
  function indexesOf(holder) {
    return (holder.dataset.path.match(/\[(\d+)\]/g) || []).map(function (part) { return Number(part.slice(1, -1)); });
  }

  // --- drag and drop: a node's grip onto another node's head ------------------------------------
  // Where a drop on this head puts the dragged node: before or after the head's node (its upper or
  // lower part), or, on the middle of a workflow's head (the root's whole head), at that workflow's
  // end. Null when the place is inside the dragged node itself.
  function dropPlace(head, clientY) {
    var holder = head.parentNode, indexes = indexesOf(holder), node = nodeAt(indexes);
    var box = head.getBoundingClientRect(), share = (clientY - box.top) / Math.max(box.height, 1);
    var label = labelOf(node, indexes), place;
    if (isWorkflow(node) && (!indexes.length || (share > 0.25 && share < 0.75))) {
      place = { at: "into", target: indexes, text: "into " + label + ", at its end" };
    } else {
      var after = share >= 0.5;
      place = {
        at: after ? "after" : "before", target: indexes.slice(0, -1), indexes: indexes, after: after,
        text: (after ? "after " : "before ") + label,
      };
    }
    var dragged = state.dragging;
    if (within(indexes, dragged)) return { refused: labelOf(nodeAt(dragged), dragged) + " cannot be dropped on itself or into its own nodes" };
    return place;
  }
  // The drop target is shown by a line (before/after) or a dashed frame (into) and its words.
  function showDrop(head, place) {
    visual.querySelectorAll(".v-head[data-drop]").forEach(function (other) {
      if (other === head) return;
      other.removeAttribute("data-drop");
      other.removeAttribute("data-drop-at");
    });
    if (!head) return;
    var dragged = labelOf(nodeAt(state.dragging), state.dragging);
    head.dataset.drop = place.refused ? "✕ " + place.refused : "Drop: move " + dragged + " " + place.text;
    head.dataset.dropAt = place.refused ? "refused" : place.at;
  }
  visual.addEventListener("dragstart", function (event) {
    var grip = event.target.closest && event.target.closest(".v-grip");
    if (!grip) return;
    var holder = grip.closest("li.v-node");
    state.dragging = indexesOf(holder);
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", holder.dataset.path); // some browsers drag nothing without data
    event.dataTransfer.setDragImage(holder.querySelector(".v-head"), 10, 10);
    holder.classList.add("v-dragged");
  });
  // The head at the pointer's height (heads are rows that never overlap), rather than the event's
  // target: the drop words shown under a head lie over the next head and must not decide the place.
  function headAt(clientY) {
    if (!state.dragging) return null;
    return Array.prototype.find.call(visual.querySelectorAll(".v-head"), function (head) {
      var box = head.getBoundingClientRect();
      return clientY >= box.top && clientY < box.bottom;
    }) || null;
  }
  visual.addEventListener("dragover", function (event) {
    var head = headAt(event.clientY);
    if (!head) { showDrop(null); return; }
    var place = dropPlace(head, event.clientY);
    showDrop(head, place);
    if (place.refused) return; // the default: no drop here
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  });
  visual.addEventListener("dragleave", function (event) {
    if (!visual.contains(event.relatedTarget)) showDrop(null);
  });
  visual.addEventListener("drop", function (event) {
    var head = headAt(event.clientY);
    if (!head) return;
    event.preventDefault();
    var place = dropPlace(head, event.clientY), dragged = state.dragging;
    endDrag();
    if (!place.refused) actions.move(dragged, place.target, place.indexes ? place : null);
  });
  function endDrag() {
    state.dragging = null;
    showDrop(null);
    visual.querySelectorAll(".v-dragged").forEach(function (holder) { holder.classList.remove("v-dragged"); });
  }
  visual.addEventListener("dragend", endDrag);
  // The keyboard on a focused node: Alt+↑ and Alt+↓ reorder it, Delete removes it.
  visual.addEventListener("keydown", function (event) {
    var holder = event.target;
    if (!editable || !holder.matches || !holder.matches("li.v-node") || holder.dataset.path === "spec") return;
    var indexes = indexesOf(holder);
    if (event.altKey && event.key === "ArrowUp") actions.up(indexes);
    else if (event.altKey && event.key === "ArrowDown") actions.down(indexes);
    else if (event.key === "Delete") actions.remove(indexes);
    else return;
    event.preventDefault();
  });
  // A problem's line selects that line of the text; its path shows its node in the visual mode (the
  // deepest node holding that path).
  issues.addEventListener("click", function (event) {
    var line = event.target.closest(".issue-line");
    if (line) {
      var lines = text.value.split("\n"), wanted = Number(line.dataset.line) - 1, start = 0;
      for (var i = 0; i < wanted && i < lines.length; i += 1) start += lines[i].length + 1;
      text.focus();
      text.setSelectionRange(start, start + (lines[wanted] || "").length);
      // Scroll the textarea so that the line shows (its line height, in pixels, times the line).
      text.scrollTop = Math.max(0, wanted * parseFloat(window.getComputedStyle(text).lineHeight) - text.clientHeight / 3);
      return;
    }
    var link = event.target.closest(".issue-path");
    if (!link) return;
    var wanted = link.dataset.path, best = null;
    visual.querySelectorAll("li.v-node").forEach(function (holder) {
      var path = holder.dataset.path;
      var holds = wanted === path || (wanted.indexOf(path) === 0 && ".[".indexOf(wanted.charAt(path.length)) >= 0);
      if (holds && (!best || path.length > best.dataset.path.length)) best = holder;
    });
    if (best) { best.focus(); best.scrollIntoView({ block: "nearest" }); }
  });

  check(false);
})();
