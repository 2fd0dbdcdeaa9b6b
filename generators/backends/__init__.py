"""One module per way of serving a model; `generators.factory.make_client` picks one from the config."""
