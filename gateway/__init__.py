"""The HTTP gateway: commands in, read-model queries and the change stream out.

Runs no DDL (it waits for the projector's schema). May import `contracts`, `foundation`,
the read models of `projections` and the pure rules of `streams`; never `warroom`."""
