"""The `dice` command: offline spec tools and a client of the console's REST API."""
