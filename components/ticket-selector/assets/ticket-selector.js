/*
 * ticket-selector: choosing a quantity publishes `cart/quantity-selected`. It does not know who
 * listens; whatever owns the cart updates from the store.
 */
oberon.component("ticket-selector", function (root, ctx) {
  var form = ctx.find("form");
  var tickets = ctx.getState().tickets;
  if (!form || !tickets) {
    return;
  }
  var tiers = {};
  tickets.tiers.forEach(function (tier) {
    tiers[tier.id] = tier;
  });

  function publish(select) {
    var tier = tiers[select.getAttribute("data-tier-id")];
    if (!tier) {
      return;
    }
    ctx.dispatch({
      type: "cart/quantity-selected",
      payload: {
        event_id: tickets.event_id,
        tier_id: tier.id,
        name: tier.name,
        price_cents: tier.price_cents,
        quantity: parseInt(select.value, 10) || 0
      }
    });
  }

  form.addEventListener("change", function (event) {
    if (event.target.matches("select[data-tier-id]")) {
      publish(event.target);
    }
  });
  // With this script running, the cart follows every change; the button confirms the selection.
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    ctx.findAll("select[data-tier-id]").forEach(publish);
  });
});
