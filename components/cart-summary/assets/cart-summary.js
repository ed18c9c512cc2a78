/*
 * cart-summary: owns the `cart` state key. Its reducer turns `cart/quantity-selected` actions,
 * from whichever component publishes them, into the cart; the summary re-renders from the store.
 */
(function () {
  var CURRENCY_SYMBOL = "€"; // the checkout BFF's cart currency

  function formatPrice(cents) {
    var units = Math.floor(Math.abs(cents) / 100);
    var rest = Math.abs(cents) % 100;
    var sign = cents < 0 ? "-" : "";
    return sign + CURRENCY_SYMBOL + units.toLocaleString("en-US") + "." + (rest < 10 ? "0" : "") + rest;
  }

  function withQuantity(cart, payload) {
    var items = (cart && cart.items ? cart.items : []).filter(function (item) {
      return item.tier_id !== payload.tier_id;
    });
    if (payload.quantity > 0) {
      items.push({
        event_id: payload.event_id,
        tier_id: payload.tier_id,
        name: payload.name,
        price_cents: payload.price_cents,
        quantity: payload.quantity
      });
    }
    var count = 0;
    var cents = 0;
    items.forEach(function (item) {
      count += item.quantity;
      cents += item.quantity * item.price_cents;
    });
    return { items: items, count: count, total: formatPrice(cents) };
  }

  oberon.reducer("cart", function (cart, action) {
    return action.type === "cart/quantity-selected" ? withQuantity(cart, action.payload) : cart;
  });

  oberon.component("cart-summary", function (root, ctx) {
    var status = ctx.find(".cart-summary__status");
    var count = ctx.find(".cart-summary__count");
    var total = ctx.find(".cart-summary__total");

    ctx.subscribe(["cart"], function (state) {
      var cart = state.cart;
      status.textContent = cart.count === 0
        ? "Your cart is empty."
        : cart.count + " ticket" + (cart.count === 1 ? "" : "s") + " in your cart.";
      count.textContent = String(cart.count);
      total.textContent = cart.total;
    });
  });
})();
