"""The top: the `warroom` CLI, the embedded dev stack (`warroom up`), the demo and the
launchers of what it runs (`warroom.servers`). May import every package below it;
none of them imports it."""
