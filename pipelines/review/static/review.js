// cvops review page: the keyboard. One key per tag (shown on its button), x reject, s skip, arrows move,
// Enter confirms a Multilabel choice. It only clicks the page's own buttons and follows its own links: every decision
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
    if (!form) {
      return;
    }
    if (key === "s") {
      event.preventDefault();
      follow("skip");
    } else if (key === "x") {
      event.preventDefault();
      submit(document.getElementById("reject"));
    } else if (key === "Enter" && form.getAttribute("data-multilabel") === "true") {
      event.preventDefault();
      submit(document.getElementById("confirm"));
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
