/*
 * Oberon's client runtime: the page's store, recreated from the state the server rendered with (the keys
 * the page's scripts read: their components' data and `subscribes`), and each component's client code
 * bound to its own boundary element. No framework.
 *
 *   oberon.reducer("cart", function (cart, action) { ... return newCart; });
 *   oberon.component("cart-summary", function (root, ctx) {
 *     ctx.subscribe(["cart"], function (state) { ... });
 *     ctx.dispatch({ type: "cart/quantity-selected", payload: { ... } });
 *   });
 *
 * Components never call each other: one dispatches an action, reducers registered by any
 * component compute the keys they own, and subscribers of the keys that changed are called.
 * An error in one component's code is reported and contained; the others keep working.
 *
 * Client code binds to the version that rendered the boundary: the page loads each component's
 * script with `data-oberon-script="NAME" data-oberon-version="VERSION"`, and `oberon.component`
 * called from it binds only to boundaries of that version (a canary's script to the canary's
 * boundaries, the stable script to stable ones, even on one page). Called from anywhere else
 * (an inline script, another component's file), it binds every boundary of the name.
 *
 * Islands: a private component of a public page is rendered per visitor at its own URL. A CDN may
 * fill it in (ESI: its state script is in the page); else the page holds a box
 * `data-oberon-island-src="/_islands/NAME?..."` with a placeholder, and this runtime fetches the
 * island once the page is parsed, puts it in the box, merges its state into the store (actions
 * dispatched meanwhile are replayed over it) and binds the client code of its boundaries. A failed
 * fetch leaves the placeholder's fallback (a `<template data-oberon-island-fallback>`) in the box.
 */
(function (window, document) {
  "use strict";

  var STATE_ELEMENT = "oberon-state";
  var ISLAND = "data-oberon-island";
  var BOUNDARY = "data-oberon-component";
  var VERSION = "data-oberon-version";
  var SCRIPT = "data-oberon-script";
  var ISLAND_SOURCE = "data-oberon-island-src";
  var ISLAND_FALLBACK = "data-oberon-island-fallback";
  var CLIENT = "data-oberon-client";
  var TEAM = /^[a-z][a-z0-9-]*$/;

  function report(where, error) {
    if (window.console && window.console.error) {
      window.console.error("oberon: " + where + ":", error);
    }
  }

  function readState(element, where) {
    try {
      var page = JSON.parse(element.textContent || "{}");
      return { state: page.state || {}, failed: page.failed || [] };
    } catch (error) {
      report(where + " is not valid JSON", error);
      return { state: {}, failed: [] };
    }
  }

  function islandStates(scope) {
    return Array.prototype.map.call(scope.querySelectorAll("script[" + ISLAND + "]"), function (island) {
      return readState(island, "the state of island " + island.getAttribute(ISLAND));
    });
  }

  // The page's state, with the state of each ESI island (rendered per user by the CDN) merged in.
  function readPage() {
    var element = document.getElementById(STATE_ELEMENT);
    var page = element ? readState(element, "the page state") : { state: {}, failed: [] };
    islandStates(document).forEach(function (part) {
      Object.assign(page.state, part.state);
      page.failed = page.failed.concat(part.failed);
    });
    return page;
  }

  function createStore(initial) {
    var state = Object.assign({}, initial);
    var reducers = {};
    var listeners = [];
    var queue = [];
    var dispatching = false;
    var history = null; // the actions dispatched while islands are on their way, to replay over their state

    function getState() {
      return state;
    }

    function apply(action) {
      var next = null;
      var changed = [];
      Object.keys(reducers).forEach(function (key) {
        var value = (next || state)[key];
        reducers[key].forEach(function (reduce) {
          try {
            value = reduce(value, action);
          } catch (error) {
            report("a reducer of '" + key + "' threw on " + action.type, error);
          }
        });
        if (value !== state[key]) {
          next = next || Object.assign({}, state);
          next[key] = value;
          changed.push(key);
        }
      });
      if (history) {
        history.push(action);
      }
      if (!next) {
        return;
      }
      state = next;
      notify(changed, action);
    }

    function notify(changed, action) {
      listeners.slice().forEach(function (listener) {
        if (listener.keys.some(function (key) { return changed.indexOf(key) >= 0; })) {
          try {
            listener.callback(state, action);
          } catch (error) {
            report("a subscriber of " + listener.keys.join(", ") + " threw", error);
          }
        }
      });
    }

    // Islands are coming: keep the actions dispatched until they are all in (`hold(false)`).
    function hold(holding) {
      history = holding ? history || [] : null;
    }

    // An island's state arrived: its keys as the server rendered them, with the actions since replayed over them.
    // Returns the keys those actions changed: the island's markup shows them as they were before.
    function merge(part, action) {
      var next = Object.assign({}, state);
      var changed = [];
      var replayed = [];
      Object.keys(part).forEach(function (key) {
        var value = part[key];
        (history || []).forEach(function (past) {
          (reducers[key] || []).forEach(function (reduce) {
            try {
              value = reduce(value, past);
            } catch (error) {
              report("a reducer of '" + key + "' threw on " + past.type, error);
            }
          });
        });
        if (value !== part[key]) {
          replayed.push(key);
        }
        if (value !== state[key]) {
          next[key] = value;
          changed.push(key);
        }
      });
      if (changed.length) {
        state = next;
        notify(changed, action);
      }
      return replayed;
    }

    function dispatch(action) {
      if (!action || typeof action.type !== "string") {
        throw new TypeError("oberon: an action needs a string 'type'");
      }
      queue.push({ type: action.type, payload: action.payload || {} });
      if (dispatching) {
        return; // a subscriber dispatched: handled after the current action, in order
      }
      dispatching = true;
      try {
        while (queue.length) {
          apply(queue.shift());
        }
      } finally {
        dispatching = false;
      }
    }

    function reducer(key, reduce) {
      (reducers[key] = reducers[key] || []).push(reduce);
      return function () {
        reducers[key] = reducers[key].filter(function (other) { return other !== reduce; });
      };
    }

    function subscribe(keys, callback) {
      var listener = { keys: [].concat(keys), callback: callback };
      listeners.push(listener);
      return function () {
        listeners = listeners.filter(function (other) { return other !== listener; });
      };
    }

    return {
      getState: getState,
      dispatch: dispatch,
      reducer: reducer,
      subscribe: subscribe,
      hold: hold,
      merge: merge,
      notify: notify
    };
  }

  function bff(team, path, init) {
    if (!TEAM.test(team) || typeof path !== "string" || path.charAt(0) !== "/") {
      return Promise.reject(new TypeError("oberon.bff(team, '/path'): bad team or path"));
    }
    var options = Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, init);
    return window.fetch("/bff/" + team + path, options).then(function (response) {
      if (!response.ok) {
        throw new Error("/bff/" + team + path + " answered " + response.status);
      }
      return response.json();
    });
  }

  function ownedBy(root) {
    return function (element) {
      return element.closest("[" + BOUNDARY + "]") === root;
    };
  }

  function context(name, root, store) {
    var mine = ownedBy(root);
    return {
      name: name,
      root: root,
      getState: store.getState,
      dispatch: store.dispatch,
      subscribe: store.subscribe,
      bff: bff,
      // Only this boundary's elements: a nested component's markup is not ours to touch.
      findAll: function (selector) {
        return Array.prototype.filter.call(root.querySelectorAll(selector), mine);
      },
      find: function (selector) {
        return Array.prototype.filter.call(root.querySelectorAll(selector), mine)[0] || null;
      }
    };
  }

  function whenParsed(callback) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  }

  var page = readPage();
  var store = createStore(page.state);

  // The version whose script is running, when that script is `name`'s own (read while it runs: deferred
  // scripts run one at a time, each with itself as document.currentScript).
  function runningVersion(name) {
    var script = document.currentScript;
    if (script && script.getAttribute(SCRIPT) === name && script.hasAttribute(VERSION)) {
      return script.getAttribute(VERSION);
    }
    return null;
  }

  var bindings = []; // each component's client code, to bind islands' boundaries with as they arrive

  // Bind `binding` to the boundaries under `scope` it is for, each once.
  function bind(binding, scope) {
    var roots = scope.querySelectorAll("[" + BOUNDARY + "]");
    Array.prototype.forEach.call(roots, function (root) {
      // A fallback has no markup of the component's own to enhance; another version's markup is not ours.
      if (root.getAttribute(BOUNDARY) !== binding.name || root.getAttribute("data-oberon-outcome") !== "ok") {
        return;
      }
      if (binding.version !== null && root.getAttribute(VERSION) !== binding.version) {
        return;
      }
      if (root.hasAttribute(CLIENT)) {
        return; // bound already (an island that arrived before this code ran)
      }
      try {
        binding.init(root, context(binding.name, root, store));
        root.setAttribute(CLIENT, "ready");
      } catch (error) {
        root.setAttribute(CLIENT, "failed");
        report("the client code of " + binding.name + " threw", error);
      }
    });
  }

  function component(name, init) {
    var binding = { name: name, version: runningVersion(name), init: init };
    bindings.push(binding);
    whenParsed(function () {
      bind(binding, document);
    });
  }

  // The island arrived: in its box, its state in the store, its boundaries bound.
  function arrive(box, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    if (!template.content.querySelector("[" + BOUNDARY + "]")) {
      throw new Error("not an island");
    }
    var parts = islandStates(template.content);
    var arrived = { type: "oberon/island-arrived", payload: { src: box.getAttribute(ISLAND_SOURCE) } };
    var replayed = [];
    box.replaceChildren(template.content);
    box.setAttribute("data-oberon-island-status", "ready");
    parts.forEach(function (part) {
      page.failed.push.apply(page.failed, part.failed);
      replayed = replayed.concat(store.merge(part.state, arrived));
    });
    bindings.forEach(function (binding) {
      bind(binding, box);
    });
    if (replayed.length) {
      store.notify(replayed, arrived); // the island's code shows what was chosen while it was on its way
    }
  }

  function miss(box, error) {
    var fallback = box.querySelector("template[" + ISLAND_FALLBACK + "]");
    if (fallback) {
      box.replaceChildren(fallback.content.cloneNode(true));
    }
    box.setAttribute("data-oberon-island-status", "failed");
    report("island " + box.getAttribute(ISLAND_SOURCE) + " did not arrive", error);
  }

  // Fetch every client island of the page (same origin, with the visitor's cookies: it is theirs).
  function loadIslands() {
    var boxes = document.querySelectorAll("[" + ISLAND_SOURCE + "]");
    var waiting = boxes.length;
    if (!waiting || !window.fetch) {
      return;
    }
    store.hold(true);
    Array.prototype.forEach.call(boxes, function (box) {
      var src = box.getAttribute(ISLAND_SOURCE);
      window.fetch(src, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(src + " answered " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          arrive(box, html);
        })
        .catch(function (error) {
          miss(box, error);
        })
        .then(function () {
          waiting -= 1;
          if (!waiting) {
            store.hold(false);
          }
        });
    });
  }

  whenParsed(loadIslands);

  window.oberon = {
    getState: store.getState,
    dispatch: store.dispatch,
    subscribe: store.subscribe,
    reducer: store.reducer,
    failed: page.failed,
    component: component,
    bff: bff
  };
})(window, document);
