"""Services and the status their open incidents give them."""
