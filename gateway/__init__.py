"""The HTTP gateway: commands in, read-model queries and the change stream out."""
