// cvops review page: the keyboard. Keys for every tag (shown on its button: 1-9, 0, then a second row q w e r ...
// and a free initial), x reject, s skip, u undo the last decision, arrows move. Enter does what the focused control
// says (a focused Reject rejects, a focused Skip skips: the browser's own action); with nothing focused, or a tag's
// checkbox focused, Enter confirms a Multilabel choice. It only clicks the page's own buttons and follows its own links: every decision
// is the form's ordinary POST, so the page also works without this script. No innerHTML: nothing from a blob name or
// record is ever parsed as HTML here.
(function () {
  "use strict";

  var form = document.getElementById("decide");
  var sent = false;

  function bound(key) {
    var all = document.querySelectorAll("[data-keys]");
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-keys").split(" ").indexOf(key) >= 0) {
        return all[i];
      }
    }
    return null;
  }

  // A control whose own Enter action the browser performs: a button (submits with itself as the submitter) or a
  // link (followed). Enter on it must never be turned into another control's action.
  function ownsEnter(element) {
    if (!element || element === document.body) {
      return false;
    }
    var tag = element.tagName;
    return tag === "BUTTON" || (tag === "A" && element.hasAttribute("href")) ||
        (tag === "INPUT" && (element.type === "submit" || element.type === "button"));
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link) {
      window.location.assign(link.href);
    }
  }

  function say(text) {
    var box = document.querySelector(".flashes");
    if (!box) {
      return;
    }
    var note = document.createElement("p");
    note.className = "flash error";
    note.setAttribute("role", "status");
    note.textContent = text;
    box.replaceChildren(note);
  }

  function submit(button) {
    if (!sent) {
      form.requestSubmit(button);
    }
  }

  if (form) {
    // One POST per page: a double click, or a key held down, sends the decision once.
    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      var multilabel = form.getAttribute("data-multilabel") === "true";
      if (sent) {
        event.preventDefault();
        return;
      }
      if (multilabel && submitter && submitter.value === "confirm" &&
          !form.querySelector("input[name=tag]:checked")) {
        event.preventDefault();
        say("pick at least one tag (or press x to reject)");
        return;
      }
      sent = true;
      form.classList.add("sent");
    });
  }

  // The undo form: one POST too (a double click would otherwise be told "already undone" by its second post).
  var undoForm = document.querySelector("form.undo");
  if (undoForm) {
    undoForm.addEventListener("submit", function (event) {
      if (undoForm.classList.contains("sent")) {
        event.preventDefault();
        return;
      }
      undoForm.classList.add("sent");
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "ArrowRight" || key === "ArrowLeft") {
      event.preventDefault();
      follow(key === "ArrowRight" ? "next" : "prev");
      return;
    }
    if (key === "u") {
      var undo = document.getElementById("undo");
      if (undo) {
        event.preventDefault();
        if (!undo.form.classList.contains("sent")) {
          undo.form.requestSubmit(undo);
        }
      }
      return;
    }
    if (key === "s") {
      event.preventDefault();
      follow("skip");  // also on an image that cannot be reviewed (no form)
      return;
    }
    if (!form) {
      return;
    }
    if (key === "x") {
      event.preventDefault();
      submit(document.getElementById("reject"));
    } else if (key === "Enter") {
      if (ownsEnter(document.activeElement)) {
        return;  // the focused button or link acts itself (a click): never the Confirm button instead
      }
      if (form.getAttribute("data-multilabel") === "true") {
        event.preventDefault();
        submit(document.getElementById("confirm"));
      }
    } else {
      var target = bound(key);
      if (target) {
        event.preventDefault();
        if (target.type === "checkbox") {
          target.checked = !target.checked;
        } else {
          submit(target);
        }
      }
    }
  });
}());
