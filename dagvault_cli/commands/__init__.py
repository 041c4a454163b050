"""The CLI's commands, one module per group; each module's ``register(subparsers)`` adds its
commands, their flags and their handlers (``dagvault_cli.main.build_parser`` calls them in
order; the node service's up/status/down are in ``dagvault_cli.service``)."""
